"""Partition keys: slugs that Dagster can key, that join safely as ``image|prompt``, and that can
never escape a storage prefix (no ``/``, no ``..``)."""

from __future__ import annotations

import re

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_RULE = (
    "1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..' "
    "(so it is a Dagster partition key and a safe file name)"
)


def key_problem(key: str) -> str | None:
    """None when ``key`` is a valid partition key, else the rule it breaks."""
    if not KEY_PATTERN.fullmatch(key) or ".." in key:
        return KEY_RULE
    return None
