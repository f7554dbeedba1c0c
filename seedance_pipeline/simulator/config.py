"""The simulator's knobs: per-provider timing, fault rules, accepted API keys (pydantic models).

A ``SimConfig`` travels as JSON (``PUT /_sim/config``), so every field here is plain data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROVIDERS = ("runpod", "wavespeed", "jiekou", "novita", "vibedream", "modelark")

Endpoint = Literal["submit", "status", "download", "cancel", "list", "*"]

FaultKind = Literal[
    "http_429",  # 429 with the provider's error body (+ Retry-After when retry_after is set)
    "http_status",  # any `status` with the provider's error body
    "drop_before",  # abort the TCP connection without processing the request
    "drop_after",  # process the request fully (e.g. create the task), then abort without a response
    "delay",  # sleep delay_s, then answer normally
    "trickle",  # send the response body in small pieces spread over delay_s
    "truncate",  # downloads: announce the full Content-Length, send about half, abort
    "corrupt",  # downloads: 200 with bytes that are not an MP4
    "expire_url",  # downloads: 403 as if the signed URL had expired
    "moderation",  # task outcome (applied to the task a matching submit creates)
    "expire",  # task outcome
    "fail",  # task outcome
    "down",  # an outage: from the first matching request on, every matching request for duration_s
    #          answers 503 (or `status` when set) with the provider's error body, as a load balancer
    #          with no healthy backend does; `times` counts outages, not requests
    "echo_auth",  # an error (`status`, default 500) whose body echoes the request's Authorization
    #               header, as some gateways do when they dump the request they could not route
    "redirect",  # downloads: 302 to `location` (default: the same URL with ?redirected=N appended)
    # Output faults (render.CONTENT_FAULTS): the task a matching submit creates succeeds, and its clip plays and
    # has the requested shape, but its content is bad, for the content checks (clip/content.py) to catch.
    "wrong_image",  # the clip animates an unrelated picture, not the input image
    "frozen",  # every frame is the same frame
    "black",  # the second half of the clip is black
    "silent",  # the audio track (when audio was asked for) is silence
]

# Kinds that only make sense on a download, and kinds that decide a submitted task's outcome.
DOWNLOAD_KINDS = frozenset({"truncate", "corrupt", "expire_url", "redirect"})
CONTENT_KINDS = frozenset({"wrong_image", "frozen", "black", "silent"})
OUTCOME_KINDS = frozenset({"moderation", "expire", "fail"}) | CONTENT_KINDS


class ProviderSimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Generation time after the task starts: uniform in [min, max], drawn from the seeded RNG.
    latency_min_s: float = Field(2.0, ge=0)
    latency_max_s: float = Field(2.0, ge=0)
    # Resolutions the provider's page lists but its API refuses at submit (a 400 naming the resolution), as
    # JieKou's own plugin says of 1080p (docs/providers.md §5.2).
    refused_resolutions: list[str] = []
    # An entry tier's rate limit (WaveSpeed Bronze: 2 videos a minute, 2 at once; docs/providers.md §4.5): at most
    # this many accepted submits in any rolling ``rate_window_s``, and at most ``max_running`` tasks queued or
    # running; beyond either, a submit answers 429 without Retry-After. None: no limit.
    submits_per_window: int | None = Field(None, ge=1)
    rate_window_s: float = Field(60.0, gt=0)
    max_running: int | None = Field(None, ge=1)
    # WaveSpeed's predictions list: how long after its creation a task shows in it.
    list_delay_s: float = Field(0.0, ge=0)
    # Time every task spends queued before it can start.
    queue_delay_s: float = Field(0.0, ge=0)
    # Tasks beyond this many running at once wait queued for a free slot (None: unlimited).
    max_concurrency: int | None = Field(None, ge=1)
    # Output URLs stop working this many seconds after the task completed (None: never).
    output_url_ttl_s: float | None = Field(None, gt=0)
    # A task is forgotten (status 404, not listed; its output URL keeps output_url_ttl_s) this long after it ended.
    # None: never, except RunPod's documented defaults, 1800 s for /run jobs and 60 s for /runsync jobs.
    record_ttl_s: float | None = Field(None, ge=0)
    # RunPod /runsync wait when no ?wait= is given (docs: 90 s).
    runsync_default_wait_s: float = Field(90.0, ge=0)
    # WaveSpeed enable_sync_mode: how long the POST blocks before the 504 / code 5004 answer.
    sync_mode_timeout_s: float = Field(60.0, ge=0)
    # Novita: the submit response's id field; its docs disagree ("task_id" in the OpenAPI example,
    # "id" in the prose). Ignored by the other providers.
    submit_id_field: Literal["task_id", "id"] = "task_id"
    # Benchmarks: serve every output of this provider as a body of exactly this many bytes, streamed
    # in 1 MiB pieces (the real MP4, then zero padding), so 100 MB downloads cost the simulator no RAM.
    # The body still starts with the MP4's ftyp box and has a Content-Length. None: the MP4 as rendered.
    output_size_bytes: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _latency_order(self) -> ProviderSimConfig:
        if self.latency_max_s < self.latency_min_s:
            raise ValueError("latency_max_s must be >= latency_min_s")
        return self


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = "*"
    endpoint: Endpoint = "*"
    kind: FaultKind
    times: int | None = Field(None, ge=0)  # apply to the next N matching requests (None: every one)
    skip: int = Field(0, ge=0)  # let the first K matching requests pass untouched
    probability: float | None = Field(None, ge=0, le=1)  # drawn from the seeded RNG
    retry_after: str | None = None  # Retry-After header value (seconds or HTTP-date); None: absent
    status: int = Field(500, ge=100, le=599)  # for http_status
    delay_s: float = Field(0.0, ge=0)  # for delay and trickle
    duration_s: float = Field(60.0, gt=0)  # for down: how long each outage lasts
    location: str | None = None  # for redirect: the Location header (any scheme, e.g. file:///etc/passwd)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        if v != "*" and v not in PROVIDERS:
            raise ValueError(f"provider must be '*' or one of {', '.join(PROVIDERS)}")
        return v


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    providers: dict[str, ProviderSimConfig] = Field(default_factory=dict)
    faults: list[FaultRule] = Field(default_factory=list)
    # None: any non-empty Bearer token is accepted.
    api_keys: list[str] | None = None
    render_cache_dir: str | None = None
    # Benchmarks: render one clip per (width, height, duration, audio) and serve its bytes for every
    # task of that shape (the source image and seed are ignored), so 1000 tasks cost a handful of
    # ffmpeg runs. The clips are still real MP4s of the requested size, duration and audio.
    render_shared: bool = False

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: dict[str, ProviderSimConfig]) -> dict[str, ProviderSimConfig]:
        unknown = sorted(set(v) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {', '.join(PROVIDERS)}")
        return v

    def provider(self, name: str) -> ProviderSimConfig:
        return self.providers.get(name) or ProviderSimConfig()
