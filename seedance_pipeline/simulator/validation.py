"""Small request-field checks shared by the provider modules; each raises ``BadField``."""

from __future__ import annotations

from typing import Any

_MISSING = object()


class BadField(Exception):
    def __init__(self, field: str, message: str, code: str | None = None):
        self.field, self.code = field, code
        super().__init__(message)


def required_str(body: dict, field: str) -> str:
    v = body.get(field)
    if v is None:
        raise BadField(field, f"{field} is required")
    if not isinstance(v, str) or not v.strip():
        raise BadField(field, f"{field} must be a non-empty string")
    return v


def optional_str(body: dict, field: str) -> str | None:
    v = body.get(field)
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise BadField(field, f"{field} must be a non-empty string")
    return v


def enum(body: dict, field: str, allowed: tuple[str, ...], default: Any) -> Any:
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if v not in allowed:
        raise BadField(field, f"{field} must be one of {', '.join(allowed)} (got {v!r})")
    return v


def integer(body: dict, field: str, lo: int, hi: int, default: Any, *, allow_integral_float: bool = False) -> Any:
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if allow_integral_float and isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadField(field, f"{field} must be an integer (got {v!r})")
    if not lo <= v <= hi:
        raise BadField(field, f"{field} must be between {lo} and {hi} (got {v})")
    return v


def boolean(body: dict, field: str, default: Any) -> Any:
    v = body.get(field, _MISSING)
    if v is _MISSING or v is None:
        return default
    if not isinstance(v, bool):
        raise BadField(field, f"{field} must be a boolean (got {v!r})")
    return v
