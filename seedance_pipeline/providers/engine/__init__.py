"""The one I/O engine every provider adapter shares (``client.py`` says what it guarantees).

The public surface is what this module exports; its modules each do one job: ``client`` (submit, poll,
cancel, list), ``wait`` (poll until terminal), ``download``, ``schedule`` (when to poll), ``shapes`` (a schedule
per request shape), ``retry`` (what to retry and how long to wait), ``limit`` (the adaptive in-flight limit),
``redaction`` (no secret in any message), ``settings`` (every knob).
"""

from seedance_pipeline.providers.engine.client import ProviderClient
from seedance_pipeline.providers.engine.download import MAX_REDIRECTS, DownloadResult, Sink
from seedance_pipeline.providers.engine.redaction import scrub
from seedance_pipeline.providers.engine.retry import parse_retry_after
from seedance_pipeline.providers.engine.schedule import PollSchedule
from seedance_pipeline.providers.engine.settings import ClientSettings

__all__ = [
    "MAX_REDIRECTS",
    "ClientSettings",
    "DownloadResult",
    "PollSchedule",
    "ProviderClient",
    "Sink",
    "parse_retry_after",
    "scrub",
]
