"""Upstream (ByteDance Ark) failure texts that the resellers relay, in one place.

None of the five providers documents its exact failure strings for this model except VibeDream's
moderation text (docs/providers.md §6.4); these follow Ark's error codes (§7.4, §8.5): with audio on,
moderation fails on the audio track (the commonly reported false positive), else on the video.
"""

from __future__ import annotations

from seedance_pipeline.simulator.task import Task


def moderation(task: Task) -> tuple[str, str]:
    """(Ark error code, message) for a moderated task."""
    if task.audio:
        return (
            "OutputAudioSensitiveContentDetected",
            "The request failed because the output audio may contain sensitive information.",
        )
    return (
        "OutputVideoSensitiveContentDetected",
        "The request failed because the output video may contain sensitive information.",
    )


FAIL_CODE = "InternalServiceError"
FAIL_MESSAGE = "The service encountered an unexpected internal error while generating the video."
EXPIRE_MESSAGE = "The task was not completed within execution_expires_after and has expired."


def failure(task: Task) -> tuple[str, str]:
    """(code, message) for a failed task: the fail outcome, or a render error."""
    err = task.render_error()
    if err:
        return FAIL_CODE, f"video generation failed: {err}"
    return FAIL_CODE, FAIL_MESSAGE
