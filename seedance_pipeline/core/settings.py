"""Every setting read from the environment: its name, how its value is parsed, its default and meaning.

Values are read when a resource is built from the environment (``from_env``), never at import. A bad value
raises ``SettingError`` naming the variable, the value and the rule; the CLI prints that as one line and
exits 2. Provider API keys are not here: each adapter names its own (``RUNPOD_API_KEY``, ...), and they
are read through Dagster's ``EnvVar`` so that they never appear in a resource's config.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from seedance_pipeline.core.errors import SettingError

T = TypeVar("T")

DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_EXPECTED_LATENCY_S = 60.0
DEFAULT_PRESIGN_EXPIRY_S = 3600
DEFAULT_THROTTLE_DEADLINE_S = 6 * 3600.0


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    parse: Callable[[str], T]  # raises ValueError (its message, if any, is the rule broken)
    rule: str  # what a valid value looks like
    default: T | None
    meaning: str
    shown_default: str = ""  # for the docs, where the default is not a plain value

    def read(self, environ: Mapping[str, str] | None = None) -> T | None:
        """The parsed value, the default when unset or blank; ``SettingError`` when it breaks the rule."""
        raw = (os.environ if environ is None else environ).get(self.name, "").strip()
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingError(self.name, raw, str(exc) or self.rule) from None

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        return bool((os.environ if environ is None else environ).get(self.name, "").strip())


def _text(raw: str) -> str:
    return raw


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError("a number of seconds > 0")
    return value


def _whole_seconds(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("a whole number of seconds, at least 1")
    return int(raw)


def _usd(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("a number of US dollars, e.g. 25 or 2.50") from None
    if value < 0:
        raise ValueError("a budget cannot be negative")
    return value


def _count(unit: str) -> Callable[[str], int]:
    """The parser of a whole number of ``unit``, at least 1."""

    def parse(raw: str) -> int:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"a whole number of {unit}, at least 1")
        return int(raw)

    return parse


_take_count, _task_count = _count("takes"), _count("tasks")


STORAGE_URL = Setting(
    "SEEDANCE_STORAGE_URL",
    _text,
    "a folder or s3://bucket/prefix",
    None,
    "storage root: a folder or `s3://bucket/prefix`",
    shown_default="`./.seedance/storage`",
)
S3_ENDPOINT_URL = Setting(
    "SEEDANCE_S3_ENDPOINT_URL",
    _text,
    "an http(s) URL",
    None,
    "S3-compatible endpoint (MinIO, R2, ...)",
    shown_default="AWS",
)
PRESIGN_EXPIRY_S = Setting(
    "SEEDANCE_PRESIGN_EXPIRY_S",
    _whole_seconds,
    "a whole number of seconds, at least 1",
    DEFAULT_PRESIGN_EXPIRY_S,
    "lifetime of presigned image URLs handed to URL-only providers (S3 storage)",
)
EXPECTED_LATENCY_S = Setting(
    "SEEDANCE_EXPECTED_LATENCY_S",
    _positive_seconds,
    "a number of seconds > 0",
    DEFAULT_EXPECTED_LATENCY_S,
    "poll-schedule prior (s) for providers reached by key or base URL",
)
PRICES_FILE = Setting(
    "SEEDANCE_PRICES_FILE",
    _text,
    "a path to a YAML price table",
    None,
    "your own price table (same shape as `seedance_pipeline/pricing/prices.yaml`)",
    shown_default="built in",
)
BUDGET_PER_RUN_USD = Setting(
    "SEEDANCE_BUDGET_PER_RUN_USD",
    _usd,
    "a number of US dollars >= 0",
    None,
    "spend limit per run, checked before each submit",
    shown_default="none",
)
BUDGET_PER_DAY_USD = Setting(
    "SEEDANCE_BUDGET_PER_DAY_USD",
    _usd,
    "a number of US dollars >= 0",
    None,
    "spend limit per UTC day (all processes), checked before each submit",
    shown_default="none",
)
AUTO_BACKFILL_BUDGET_USD = Setting(
    "SEEDANCE_AUTO_BACKFILL_BUDGET_USD",
    _usd,
    "a number of US dollars >= 0",
    None,
    "the storage sensor backfills outdated clips itself when their forecast is at most this",
    shown_default="off",
)
THROTTLE_DEADLINE_S = Setting(
    "SEEDANCE_THROTTLE_DEADLINE_S",
    _positive_seconds,
    "a number of seconds > 0",
    DEFAULT_THROTTLE_DEADLINE_S,
    "how long a clip waits out a provider that answers 429 (with no other provider to try) before it fails",
)
MAX_TAKES = Setting(
    "SEEDANCE_MAX_TAKES",
    _take_count,
    "a whole number of takes, at least 1",
    3,
    "takes of one pair made without a person: a rejected take past this waits instead of being made again",
)
SIMULATOR_URL = Setting(
    "SEEDANCE_SIMULATOR_URL",
    _text,
    "the URL of a running `seedance-pipeline simulate`",
    None,
    "use a simulator already running for unconfigured providers",
    shown_default="start one",
)


def base_url(provider: str) -> Setting[str]:
    """``SEEDANCE_RUNPOD_BASE_URL`` and friends: where that provider's requests go."""
    return Setting(
        f"SEEDANCE_{provider.upper()}_BASE_URL",
        _text,
        "an http(s) URL",
        None,
        "provider API root (e.g. `SEEDANCE_RUNPOD_BASE_URL`)",
        shown_default="the real API",
    )


def max_in_flight(provider: str) -> Setting[int]:
    """``SEEDANCE_MAX_IN_FLIGHT_RUNPOD`` and friends: tasks one run keeps in flight at that provider."""
    return Setting(
        f"SEEDANCE_MAX_IN_FLIGHT_{provider.upper()}",
        _task_count,
        "a whole number of tasks, at least 1",
        DEFAULT_MAX_IN_FLIGHT,
        "tasks one run keeps in flight at that provider",
    )


# Everything above, for the docs (the README's configuration table is checked against it).
ALL: tuple[Setting, ...] = (
    STORAGE_URL,
    S3_ENDPOINT_URL,
    PRESIGN_EXPIRY_S,
    EXPECTED_LATENCY_S,
    PRICES_FILE,
    BUDGET_PER_RUN_USD,
    BUDGET_PER_DAY_USD,
    AUTO_BACKFILL_BUDGET_USD,
    THROTTLE_DEADLINE_S,
    MAX_TAKES,
    SIMULATOR_URL,
    base_url("<PROVIDER>"),
    max_in_flight("<PROVIDER>"),
)
