"""Which answers may be retried, and how long to wait: exponential backoff with full jitter, or ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
import time

import httpx

from seedance_pipeline.providers.engine.settings import ClientSettings

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
NOT_TAKEN_STATUSES = frozenset({408, 425, 429, 503})  # on submit: the provider says it did not take it
# A connection that never opened: nothing reached the provider.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(settings: ClientSettings, rng: random.Random, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try ``attempt + 1``: the server's ``Retry-After`` (capped), else full jitter."""
    if retry_after is not None:
        return min(retry_after, settings.retry_after_cap_s)
    return rng.uniform(0, min(settings.backoff_max_s, settings.backoff_base_s * 2**attempt))
