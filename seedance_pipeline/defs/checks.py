"""The clip checks as standalone definitions: the clips step reports them for every clip it stores, and these
re-probe a stored clip on demand (from the UI or a job), from its sidecar's request. The two file checks have
severity ERROR, the content check (its five rules folded into one) WARN (clip/checks.py; rules and thresholds:
docs/checks.md)."""

import json

import dagster as dg

from seedance_pipeline.clip import checks
from seedance_pipeline.clip.content import source_thumb
from seedance_pipeline.clip.images import read_image_bytes
from seedance_pipeline.clip.probe import VideoProbeError, probe_video
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.lineage.names import CLIPS_KEY
from seedance_pipeline.lineage.partitions import clip_partitions, split_key
from seedance_pipeline.production.metadata import severity
from seedance_pipeline.storage.resource import SeedanceStorage

DESCRIPTIONS = {
    checks.PLAYS_TO_END: "The stored MP4 is non-empty, 24 fps, and every frame decodes to the end.",
    checks.MATCHES_REQUEST: "Duration within one frame of the request, pixel size per the ratio/resolution table, "
    "and an audio stream exactly when audio was requested.",
    checks.LOOKS_AS_REQUESTED: "The content rules, each named in `tripped` when it did not pass, its figures under "
    "`<rule>.<figure>`: resembles_source (the first frame looks like the source image, SSIM of 32x32 grey "
    "thumbnails); ends_on_last_image (with a last image, the last frame looks like it); not_blank (no run of "
    "near-black or near-uniform frames longer than half a second); not_frozen (the picture moves; not judged "
    "with camera_fixed); audio_present (with audio requested, the track is not silent).",
}


def _thumb(ref: str | None, width: int, height: int):
    if not ref:
        return None
    try:
        return source_thumb(read_image_bytes(ref), width, height)
    except (OSError, ValueError, InvalidRequest):
        return None


def _probe_stored(context, storage: SeedanceStorage, name: str) -> dg.AssetCheckResult:
    image, prompt = split_key(context.partition_key)
    clip, sidecar = storage.clip_path(prompt, image), storage.sidecar_path(prompt, image)
    if not storage.exists(sidecar) or not storage.exists(clip):
        return dg.AssetCheckResult(
            passed=False, metadata={"error": f"no stored clip at {storage.ref(clip)}"}, severity=severity(name)
        )
    request = json.loads(storage.read_bytes(sidecar))["request"]
    width, height = request["width"], request["height"]
    expected = checks.Expected(
        width, height, request["duration"], request["generate_audio"], bool(request.get("camera_fixed"))
    )
    content = name == checks.LOOKS_AS_REQUESTED
    sources = None
    if content:
        last = request.get("last_image")
        sources = checks.Sources(
            _thumb(request.get("image"), width, height), _thumb(last, width, height), has_last_image=bool(last)
        )
    try:
        with storage.fs.open(clip, "rb") as fh:
            probed = probe_video(fh, sample_content=content)
        passed, meta = checks.as_checks(checks.evaluate(probed, expected, sources=sources))[name]
    except (VideoProbeError, OSError) as exc:
        passed, meta = checks.as_checks(checks.evaluate(None, expected, str(exc)))[name]
    return dg.AssetCheckResult(passed=passed, metadata=meta, severity=severity(name))


def _check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=CLIPS_KEY,
        name=name,
        partitions_def=clip_partitions,
        description=DESCRIPTIONS[name],
    )
    def _reprobe(context: dg.AssetCheckExecutionContext, storage: SeedanceStorage) -> dg.AssetCheckResult:
        return _probe_stored(context, storage, name)

    return _reprobe


# Partitioned asset checks are a Dagster preview feature (README: "Dagster features we rely on").
with accepting(dg.PreviewWarning):
    CLIP_CHECKS = [_check(name) for name in checks.CHECKS]
