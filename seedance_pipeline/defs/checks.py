"""The clip checks as standalone definitions: the clips step reports them for every clip it stores,
and these re-probe a stored clip on demand (from the UI or a job), from its sidecar's request."""

import json

import dagster as dg

from seedance_pipeline.clip.checks import MATCHES_REQUEST, PLAYS_TO_END, Expected, evaluate
from seedance_pipeline.clip.probe import VideoProbeError, probe_video
from seedance_pipeline.defs.preview import accepting
from seedance_pipeline.lineage.names import CLIPS_KEY
from seedance_pipeline.lineage.partitions import clip_partitions, split_key
from seedance_pipeline.storage.resource import SeedanceStorage


def _probe_stored(context, storage: SeedanceStorage, name: str) -> dg.AssetCheckResult:
    image, prompt = split_key(context.partition_key)
    clip, sidecar = storage.clip_path(prompt, image), storage.sidecar_path(prompt, image)
    if not storage.exists(sidecar) or not storage.exists(clip):
        return dg.AssetCheckResult(passed=False, metadata={"error": f"no stored clip at {storage.ref(clip)}"})
    request = json.loads(storage.read_bytes(sidecar))["request"]
    expected = Expected(request["width"], request["height"], request["duration"], request["generate_audio"])
    try:
        with storage.fs.open(clip, "rb") as fh:
            passed, meta = evaluate(probe_video(fh), expected)[name]
    except (VideoProbeError, OSError) as exc:
        passed, meta = evaluate(None, expected, str(exc))[name]
    return dg.AssetCheckResult(passed=passed, metadata=meta)


# Partitioned asset checks are a Dagster preview feature (README: "Dagster features we rely on").
with accepting(dg.PreviewWarning):

    @dg.asset_check(
        asset=CLIPS_KEY,
        name=PLAYS_TO_END,
        partitions_def=clip_partitions,
        description="The stored MP4 is non-empty, 24 fps, and every frame decodes to the end.",
    )
    def plays_to_end(context: dg.AssetCheckExecutionContext, storage: SeedanceStorage) -> dg.AssetCheckResult:
        return _probe_stored(context, storage, PLAYS_TO_END)

    @dg.asset_check(
        asset=CLIPS_KEY,
        name=MATCHES_REQUEST,
        partitions_def=clip_partitions,
        description="Duration within one frame of the request, pixel size per the ratio/resolution table, "
        "and an audio stream exactly when audio was requested.",
    )
    def matches_request(context: dg.AssetCheckExecutionContext, storage: SeedanceStorage) -> dg.AssetCheckResult:
        return _probe_stored(context, storage, MATCHES_REQUEST)
