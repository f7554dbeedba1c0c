"""Every knob of the provider engine, with explicit defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from seedance_pipeline.core import settings


class ClientSettings(BaseModel):
    """Every knob of the engine, with explicit defaults. Times are seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    submit_read_timeout_s: float = 120.0  # RunPod /runsync and WaveSpeed sync mode hold the POST open
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 300.0
    max_in_flight: int = settings.DEFAULT_MAX_IN_FLIGHT  # the adaptive limit's cap (limit.py)
    # A clip with no other provider to try waits out 429s this long (then its submit fails, nothing taken).
    throttle_deadline_s: float = settings.DEFAULT_THROTTLE_DEADLINE_S
    throttle_min_interval_s: float = 1.0  # the first spacing between submits after a 429 without Retry-After
    throttle_max_interval_s: float = 120.0
    # The prior for the shortest task (providers say "~60-120 s"), until the client has seen some finish.
    expected_latency_s: float = settings.DEFAULT_EXPECTED_LATENCY_S
    # Poll every 14 % of the elapsed time once past the expected duration: a task is noticed within 14 % of
    # its duration, leaving a point for the poll's own latency under benchmark 2's 15 % target (benchmarks/README.md).
    poll_growth: float = 0.14
    min_poll_interval_s: float = 1.0
    max_poll_interval_s: float = 30.0
    max_eta_wait_s: float = 600.0
    task_deadline_s: float = 3 * 3600.0  # client-side bound, also for unknown status words
    download_max_bytes: int = 2 * 1024**3
    download_chunk_bytes: int = 1024 * 1024
    allow_private_hosts: bool | None = None  # None: only when the provider base URL itself is loopback
