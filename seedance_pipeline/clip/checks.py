"""The checks on a stored clip, from a real probe of its MP4 (PyAV decodes every frame): names, rules, figures.

Two kinds. ``plays_to_end`` and ``matches_request`` judge the file and its shape (severity ERROR); the five content
rules judge what the frames and the audio show, from figures the same decode gathered (``content.py``), and are
reported to Dagster as one check, ``looks_as_requested``, with severity WARN: a person decides. ``evaluate`` judges
every rule on its own (the sidecar and the review gallery list each); ``as_checks`` folds the rules into the check.
Rules and thresholds, and how they were calibrated: docs/checks.md.

Dagster-free: the clips step turns the checks into asset-check evaluations (``production/metadata.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seedance_pipeline.clip import content
from seedance_pipeline.clip.probe import VideoProbe
from seedance_pipeline.core import model_spec

PLAYS_TO_END = "plays_to_end"
MATCHES_REQUEST = "matches_request"
RESEMBLES_SOURCE = "resembles_source"
ENDS_ON_LAST_IMAGE = "ends_on_last_image"
NOT_BLANK = "not_blank"
NOT_FROZEN = "not_frozen"
AUDIO_PRESENT = "audio_present"
FILE_CHECKS = (PLAYS_TO_END, MATCHES_REQUEST)
CONTENT_RULES = (RESEMBLES_SOURCE, ENDS_ON_LAST_IMAGE, NOT_BLANK, NOT_FROZEN, AUDIO_PRESENT)
RULES = (*FILE_CHECKS, *CONTENT_RULES)
# The content rules' one asset check: a clip's check evaluations are most of the events it stores, each stored on
# its own (benchmarks/README.md M27), and a person judges the content rules together, on the review gallery.
LOOKS_AS_REQUESTED = "looks_as_requested"
CHECKS = (*FILE_CHECKS, LOOKS_AS_REQUESTED)

# Thresholds (docs/checks.md, "Calibration", gives the figures they sit between).
MIN_RESEMBLANCE = 0.6  # SSIM of 32x32 grey thumbnails: first frame vs source, last frame vs last image
BLANK_SPREAD = 3.0  # a frame whose luma standard deviation is below this is near-uniform ...
BLANK_MEAN = 24.0  # ... or, with a spread below 2 x BLANK_SPREAD, near-black (limited-range black is 16)
SOURCE_LOOK = 24.0  # ... unless the source looks the same: itself uniform, its mean luma within this
MAX_BLANK_RUN_S = 0.5  # the longest run of blank frames a clip may have
MIN_MOTION = 0.01  # the share of the frame furthest from the first that changed (content.MOVED)
MIN_AUDIO_DBFS = -60.0  # RMS of the decoded audio; digital silence is -inf
SILENCE_FLOOR_DBFS = -120.0


# rule (or check) name -> (passed, the figures it was judged on)
CheckResults = dict[str, tuple[bool, dict[str, Any]]]


@dataclass(frozen=True)
class Expected:
    width: int
    height: int
    duration_s: int
    audio: bool
    camera_fixed: bool = False


@dataclass(frozen=True)
class Sources:
    """The request's images as the clip should show them (``content.source_thumb``); None: not known."""

    image: np.ndarray | None
    last_image: np.ndarray | None = None
    has_last_image: bool = False


def evaluate(
    probe: VideoProbe | None, expected: Expected, error: str | None = None, sources: Sources | None = None
) -> CheckResults:
    """Rule name -> (passed, metadata). ``probe`` None means the file could not be opened."""
    if probe is None:
        meta = {"error": error or "could not open the stored file"}
        return {name: (False, meta) for name in RULES}
    results = {PLAYS_TO_END: _plays_to_end(probe), MATCHES_REQUEST: _matches_request(probe, expected)}
    if probe.content is not None:
        results.update(_content(probe.content, expected, sources or Sources(None)))
    return results


def as_checks(results: CheckResults) -> CheckResults:
    """The asset checks of ``evaluate``'s rules: each file rule is its own check; the content rules judged are one,
    ``looks_as_requested``, passed when every one passed, with each rule's figures under ``<rule>.<figure>`` and
    ``tripped`` naming the rules that did not pass ("none" when all did)."""
    checks = {name: results[name] for name in FILE_CHECKS if name in results}
    judged = [name for name in CONTENT_RULES if name in results]
    if judged:
        tripped = [name for name in judged if not results[name][0]]
        meta: dict[str, Any] = {"tripped": ", ".join(tripped) or "none"}
        for name in judged:
            meta.update({f"{name}.{key}": value for key, value in results[name][1].items()})
        checks[LOOKS_AS_REQUESTED] = (not tripped, meta)
    return checks


def _plays_to_end(probe: VideoProbe) -> tuple[bool, dict[str, Any]]:
    meta = {
        "size_bytes": probe.size_bytes,
        "frames_decoded": probe.frames,
        "decoded_to_end": probe.decoded_to_end,
        "fps": probe.fps,
        "video_codec": probe.video_codec,
    }
    ok = probe.size_bytes > 0 and probe.frames > 0 and probe.decoded_to_end and abs(probe.fps - model_spec.FPS) < 0.01
    return ok, meta


def _matches_request(probe: VideoProbe, expected: Expected) -> tuple[bool, dict[str, Any]]:
    meta = {
        "duration_s": round(probe.duration_s, 4),
        "expected_duration_s": expected.duration_s,
        "size": f"{probe.width}x{probe.height}",
        "expected_size": f"{expected.width}x{expected.height}",
        "has_audio": probe.has_audio,
        "expected_audio": expected.audio,
    }
    ok = (
        abs(probe.duration_s - expected.duration_s) <= 1 / model_spec.FPS + 1e-6
        and (probe.width, probe.height) == (expected.width, expected.height)
        and probe.has_audio == expected.audio
    )
    return ok, meta


def _content(sample: content.ContentSample, expected: Expected, sources: Sources) -> CheckResults:
    return {
        RESEMBLES_SOURCE: _resembles(sample.first, sources.image, "first frame vs image"),
        ENDS_ON_LAST_IMAGE: (
            _resembles(sample.last, sources.last_image, "last frame vs last_image")
            if sources.has_last_image
            else (True, {"applies": False, "why": "the request had no last_image"})
        ),
        NOT_BLANK: _not_blank(sample, sources.image),
        NOT_FROZEN: _not_frozen(sample, expected),
        AUDIO_PRESENT: _audio_present(sample, expected),
    }


def _resembles(frame: np.ndarray | None, source: np.ndarray | None, what: str) -> tuple[bool, dict[str, Any]]:
    if frame is None or source is None:
        return False, {"error": f"cannot compare {what}: " + ("no frame" if frame is None else "source unreadable")}
    score = content.similarity(frame, source)
    return score >= MIN_RESEMBLANCE, {"similarity": score, "min_similarity": MIN_RESEMBLANCE, "compared": what}


def _not_blank(sample: content.ContentSample, source: np.ndarray | None) -> tuple[bool, dict[str, Any]]:
    src_mean = float(source.mean()) if source is not None else None
    src_uniform = source is not None and float(source.std()) < BLANK_SPREAD
    longest = run = 0
    for mean, spread in zip(sample.means, sample.spreads, strict=True):
        blank = spread < BLANK_SPREAD or (mean < BLANK_MEAN and spread < 2 * BLANK_SPREAD)
        if blank and src_uniform and src_mean is not None and abs(mean - src_mean) <= SOURCE_LOOK:
            blank = False  # a uniform source shown as it is
        run = run + 1 if blank else 0
        longest = max(longest, run)
    longest_s = round(longest / model_spec.FPS, 3)
    return longest_s <= MAX_BLANK_RUN_S, {"longest_blank_run_s": longest_s, "max_blank_run_s": MAX_BLANK_RUN_S}


def _not_frozen(sample: content.ContentSample, expected: Expected) -> tuple[bool, dict[str, Any]]:
    motion = round(sample.motion, 4)
    meta: dict[str, Any] = {"motion": motion, "min_motion": MIN_MOTION}
    if expected.camera_fixed:
        # A fixed camera on a still subject is a still clip by request: the figure is kept, nothing is judged.
        return True, {**meta, "judged": False, "why": "camera_fixed was requested: a still clip may be intended"}
    return motion >= MIN_MOTION, meta


def _audio_present(sample: content.ContentSample, expected: Expected) -> tuple[bool, dict[str, Any]]:
    if not expected.audio:
        return True, {"applies": False, "why": "no audio was requested"}
    level = sample.audio_rms_dbfs
    if level is None:
        return False, {"error": "audio was requested and the clip has no audio stream (see matches_request)"}
    # Always a number in the metadata: digital silence (-inf dBFS) is shown as the floor, flagged.
    meta = {"audio_rms_dbfs": max(level, SILENCE_FLOOR_DBFS), "min_audio_dbfs": MIN_AUDIO_DBFS}
    if level == float("-inf"):
        meta["digital_silence"] = True
    return level >= MIN_AUDIO_DBFS, meta
