"""The checks on a stored clip, from a real probe of its MP4 (PyAV decodes every frame): names, rules, figures.

Dagster-free: the clips step turns the results into asset-check evaluations (``production/metadata.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seedance_pipeline.clip.probe import VideoProbe
from seedance_pipeline.core import model_spec

PLAYS_TO_END = "plays_to_end"
MATCHES_REQUEST = "matches_request"


# check name -> (passed, the figures it was judged on)
CheckResults = dict[str, tuple[bool, dict[str, Any]]]


@dataclass(frozen=True)
class Expected:
    width: int
    height: int
    duration_s: int
    audio: bool


def evaluate(probe: VideoProbe | None, expected: Expected, error: str | None = None) -> CheckResults:
    """Check name -> (passed, metadata). ``probe`` None means the file could not be opened."""
    if probe is None:
        meta = {"error": error or "could not open the stored file"}
        return {PLAYS_TO_END: (False, meta), MATCHES_REQUEST: (False, meta)}
    frame = 1 / model_spec.FPS
    plays = {
        "size_bytes": probe.size_bytes,
        "frames_decoded": probe.frames,
        "decoded_to_end": probe.decoded_to_end,
        "fps": probe.fps,
        "video_codec": probe.video_codec,
    }
    plays_ok = (
        probe.size_bytes > 0 and probe.frames > 0 and probe.decoded_to_end and abs(probe.fps - model_spec.FPS) < 0.01
    )
    matches = {
        "duration_s": round(probe.duration_s, 4),
        "expected_duration_s": expected.duration_s,
        "size": f"{probe.width}x{probe.height}",
        "expected_size": f"{expected.width}x{expected.height}",
        "has_audio": probe.has_audio,
        "expected_audio": expected.audio,
    }
    matches_ok = (
        abs(probe.duration_s - expected.duration_s) <= frame + 1e-6
        and (probe.width, probe.height) == (expected.width, expected.height)
        and probe.has_audio == expected.audio
    )
    return {PLAYS_TO_END: (plays_ok, plays), MATCHES_REQUEST: (matches_ok, matches)}
