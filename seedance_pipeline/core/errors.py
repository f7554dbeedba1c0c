"""The project's error types. Messages name what a user must change; none carries a secret."""

from __future__ import annotations

from typing import Any


class SeedanceError(Exception):
    """Base of every error this project raises on purpose."""


class InvalidRequest(SeedanceError):
    """Rejected locally, before anything was sent: names the field, value, provider and rule."""

    def __init__(self, field: str, value: Any, rule: str, provider: str | None = None):
        self.field, self.value, self.rule, self.provider = field, value, rule, provider
        shown = value if not isinstance(value, str) or len(value) <= 120 else value[:117] + "..."
        where = f" for provider {provider}" if provider else ""
        super().__init__(f"{field}={shown!r} is not allowed{where}: {rule}")


class SettingError(SeedanceError, ValueError):
    """An environment setting (``core/settings.py``) whose value breaks its rule: names the variable, value and rule."""

    def __init__(self, name: str, value: str, rule: str):
        self.name, self.value, self.rule = name, value, rule
        super().__init__(f"{name}={value!r} is not allowed: {rule}")


class BadFile(SeedanceError):
    """A file in storage that people may edit (a review) breaks a rule: names the file, the field, the value and
    the rule. The file is left as it is."""

    def __init__(self, path: str, field: str, value: Any, rule: str):
        self.path, self.field, self.value, self.rule = path, field, value, rule
        shown = value if not isinstance(value, str) or len(value) <= 120 else value[:117] + "..."
        super().__init__(f"{path}: {field}={shown!r} is not allowed: {rule} (the file was left as it is)")


class MissingApiKey(SeedanceError):
    def __init__(self, provider: str, env_var: str):
        self.provider, self.env_var = provider, env_var
        super().__init__(f"no API key for provider {provider}: set the environment variable {env_var}")


class ProviderError(SeedanceError):
    """The provider answered, and the answer means this request will not produce a clip.

    ``sent`` tells whether the request reached the provider (True for every instance: errors raised
    before sending are InvalidRequest/MissingApiKey). ``charged`` is False unless the provider says so.
    """

    def __init__(self, provider: str, message: str, *, status_code: int | None = None, code: str | None = None):
        self.provider, self.status_code, self.code = provider, status_code, code
        self.reason = message
        prefix = f"{provider}"
        if status_code is not None:
            prefix += f" HTTP {status_code}"
        if code:
            prefix += f" {code}"
        super().__init__(f"{prefix}: {message}")


class SubmitRejected(ProviderError):
    """The provider refused the submit POST: no task exists, nothing was charged."""


class ProviderUnavailable(ProviderError):
    """429/503 or connection failures outlasted the retries before the provider accepted anything."""


class AcceptanceUnknown(ProviderError):
    """The submit POST may have reached the provider, but no task id came back.

    Never retried automatically: a task may exist and may be billed (docs/providers.md §8.1).
    """


class TaskFailed(ProviderError):
    """The provider accepted the task and it ended without a clip (failed, expired, cancelled)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        task_id: str,
        state: str,
        moderation: bool = False,
        code: str | None = None,
    ):
        self.task_id, self.state, self.moderation = task_id, state, moderation
        super().__init__(provider, f"task {task_id} {state}: {message}", code=code)


class TaskLost(ProviderError):
    """The provider accepted the task and no longer knows it (its record is gone: HTTP 404 on its status).

    A provider forgets a task some time after it ended (docs/providers.md §8.6), so it most likely finished and
    was billed; its output is unknown. Counted as charged, never resubmitted automatically.
    """

    def __init__(self, provider: str, message: str, *, task_id: str, code: str | None = None):
        self.task_id = task_id
        super().__init__(provider, f"task {task_id} lost: {message}", status_code=404, code=code)


class DownloadFailed(ProviderError):
    """The task succeeded but its output could not be stored (expired URL, truncated, not an MP4)."""

    def __init__(self, provider: str, message: str, *, task_id: str | None = None, url_expired: bool = False):
        self.task_id, self.url_expired = task_id, url_expired
        super().__init__(provider, message)


class PollTimeout(ProviderError):
    """The task did not reach a terminal state before our client-side deadline."""


class OverBudget(SeedanceError):
    """A spend limit would be passed: the attempt is stopped before anything is sent."""

    def __init__(self, message: str):
        self.reason = message
        super().__init__(message)
