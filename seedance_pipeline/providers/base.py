"""The adapter contract: a provider module translates, the engine does all I/O (sans-I/O style).

An adapter never opens a socket. It turns the common request into a ``WireRequest`` and a
``WireReply`` into a ``TaskSnapshot`` (or says the reply carries no task). Everything about
timeouts, retries, Retry-After, concurrency and polling lives in ``engine.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from seedance_pipeline.core.request import GenerationRequest
from seedance_pipeline.core.settings import Setting
from seedance_pipeline.providers.states import ListedTask, TaskSnapshot, TaskState


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str  # relative to the provider's base URL; may carry a query string
    json: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WireReply:
    status_code: int
    body: Any  # parsed JSON, or the text when the body was not JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """The limits a provider documents, checked locally before spending (docs/architecture.md, principle 3)."""

    resolutions: frozenset[str]
    ratios: frozenset[str]  # explicit ratios the provider accepts
    adaptive_wire_value: str | None  # what the provider calls adaptive; None = we resolve it locally
    seed_max: int
    image_formats: frozenset[str]  # PIL format names, upper case
    accepts_data_uri: bool
    extras: frozenset[str] = frozenset()  # service_tier / execution_expires_after / watermark
    source: str = ""  # where these limits come from
    # Where individual limits come from, when their evidence differs from ``source`` (e.g. a resolution the
    # provider's page lists and its own plugin contradicts): shown with the error that refuses them.
    notes: tuple[tuple[str, str], ...] = ()
    max_image_bytes: int = 30 * 1024 * 1024 - 1  # ByteDance's "< 30 MB" (docs/providers.md §2.5)
    image_size_rule: str = "image files must be smaller than 30 MB"


BYTEDANCE_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"})


@dataclass(frozen=True)
class ImageRefs:
    """How the images reach the provider: URLs or data URIs, already decided by the engine."""

    image: str
    last_image: str | None = None


class ProviderAdapter(ABC):
    name: ClassVar[str]
    env_key: ClassVar[str]
    default_base_url: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # How long the provider keeps a task's record after the task ends (then its status answers 404 and the task
    # is lost, §8.6), and how long an output URL lives when a reply does not say; None: not documented.
    task_retention_s: float | None = None
    output_url_ttl_s: float | None = None
    # Where the provider lists an account's recent tasks (build_list): how long after a submit its task is sure
    # to be in the list, so that one absent after that was never created. None: no list.
    list_visibility_s: float | None = None
    # Whether the listed tasks carry the image reference they were sent (what proves a match, ledger/settle.py).
    list_shows_images: bool = True
    # The states in which the cancel call (build_cancel) cancels a task; the engine asks for the task's state first
    # when this is narrower than every open state (a provider whose cancel also deletes finished tasks).
    cancellable_states: ClassVar[frozenset[TaskState]] = frozenset({TaskState.QUEUED, TaskState.RUNNING})
    # The adapter's own settings (read by ``from_env``), listed with the others in the README.
    settings: ClassVar[tuple[Setting, ...]] = ()

    @classmethod
    def from_env(cls) -> ProviderAdapter:
        """The adapter as its settings in the environment configure it (``settings``)."""
        return cls()

    @property
    def base_url(self) -> str:
        """The real API's root for this adapter as configured (e.g. per region)."""
        return self.default_base_url

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    @abstractmethod
    def build_submit(self, req: GenerationRequest, images: ImageRefs, aspect_ratio: str) -> WireRequest:
        """The submit call. ``aspect_ratio`` is already in this provider's vocabulary. Never raises: every rule
        is checked by ``validation.py`` when the clip is prepared, and this runs only when the request is sent."""

    @abstractmethod
    def parse_submit(self, reply: WireReply) -> TaskSnapshot | None:
        """A snapshot when the reply names a task (whatever its HTTP status), else None."""

    @abstractmethod
    def build_poll(self, task_id: str, poll_path: str | None = None) -> WireRequest:
        """``poll_path`` is the provider-given poll URL made relative to our base URL, if it was one."""

    @abstractmethod
    def parse_poll(self, reply: WireReply) -> TaskSnapshot:
        """Only called for 2xx replies."""

    @abstractmethod
    def error_message(self, reply: WireReply) -> tuple[str | None, str]:
        """(code, message) from an error reply, in the provider's own terms."""

    def build_list(self) -> WireRequest | None:
        """The call that lists the account's recent tasks, newest first, where the provider has one."""
        return None

    def parse_list(self, reply: WireReply) -> tuple[list[ListedTask], bool]:
        """The tasks of a 2xx list reply, and whether the list is complete back to its oldest task (False: it was
        cut at a page size, so an older task may be missing from it)."""
        return [], False

    def build_cancel(self, task_id: str) -> WireRequest | None:
        """The call that cancels a task, where the provider has one (``parse_cancel`` reads its 2xx reply)."""
        return None

    def parse_cancel(self, reply: WireReply) -> TaskSnapshot | None:
        """The task after a 2xx cancel reply; None when the reply carries no task (the engine then polls it)."""
        return self.parse_poll(reply)


def map_status(table: dict[str, TaskState], raw: str | None) -> TaskState:
    """Provider word -> common state; unknown words count as running (the engine bounds them)."""
    return table.get(raw or "", TaskState.RUNNING)


def body_dict(reply: WireReply) -> dict[str, Any]:
    return reply.body if isinstance(reply.body, dict) else {}


def nested_dict(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``body[key]`` when it is an object, else an empty one (providers leave fields out or send null)."""
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def relative_path(url: str | None, base_url: str) -> str | None:
    """A provider-given poll URL, as a path under our base URL; None if it points elsewhere.

    We never send the API key to a host other than the configured base URL.
    """
    if not url:
        return None
    base = base_url.rstrip("/")
    if url.startswith(base + "/"):
        return url[len(base) :]
    return None


_MODERATION_WORDS = ("moderation", "sensitive", "nsfw", "illegal_prompt", "illegal_image", "policyviolation", "flagged")


def looks_like_moderation(*texts: str | None) -> bool:
    """Providers say 'content moderation', 'SensitiveContentDetected', 'ILLEGAL_PROMPT', ...

    (docs/providers.md §8.5; each provider's codes in §5.4, §6.4, §7.4.)"""
    joined = " ".join(t for t in texts if t).lower().replace(" ", "")
    return any(word.replace(" ", "") in joined for word in _MODERATION_WORDS)


def as_float(value: Any) -> float | None:
    """Numbers that providers send as numbers or strings (Novita ``video_url_ttl`` is a string)."""
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
