"""Storing a clip once it is in storage: probe it for real, write its sidecar, record a reuse; the events
for Dagster come from ``metadata.py``."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from seedance_pipeline.clip.checks import CheckResults, Expected, Sources, evaluate
from seedance_pipeline.clip.content import thumb_of
from seedance_pipeline.clip.generate import ClipResult
from seedance_pipeline.clip.images import read_image_bytes
from seedance_pipeline.clip.prepare import PreparedRequest
from seedance_pipeline.clip.probe import VideoProbe, VideoProbeError, probe_video
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.ledger.journal import AttemptJournal
from seedance_pipeline.ledger.states import AttemptState
from seedance_pipeline.ledger.store import TaskStore
from seedance_pipeline.planning.reuse import Reuse, keep_current_version
from seedance_pipeline.planning.select import Candidate, Item
from seedance_pipeline.production.bridge import RelayLog
from seedance_pipeline.production.metadata import GENERATED, REUSED, clip_events
from seedance_pipeline.storage.resource import SeedanceStorage

Events = list[dg.AssetMaterialization | dg.AssetCheckEvaluation]

# Probes decode one at a time, on a thread of their own: PyAV holds the GIL for much of a decode, so probes side by
# side contend with each other and with the step's thread, and a clip's decode then costs more CPU, not less time
# (benchmarks/README.md, "Measurements behind the code", M16). One thread decodes a 4 s 480p clip in about 15 ms
# of CPU: far more clips a second than a run's providers deliver.
PROBES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedance-probe")


async def store_generated(
    it: Item,
    candidate: Candidate,
    storage: SeedanceStorage,
    result: ClipResult,
    journal: AttemptJournal,
    passed_over: list[str],
    after_lost: str | None = None,
    uploaded: io.BytesIO | None = None,
) -> Events:
    """A clip the provider made, now in storage: probed, its sidecar written. ``uploaded``: the bytes the
    clip was stored from (an object store acknowledges an upload only once it holds exactly those), probed
    instead of reading the clip back."""
    prepared = candidate.prepared
    clip_path = storage.clip_path(it.prompt, it.image)
    probed, thumb, results = await _probe(storage, clip_path, prepared, uploaded)
    sidecar = {
        "image": it.image,
        "prompt": it.prompt,
        "request": prepared.describe(),
        "fingerprint": prepared.fingerprint,
        "provider": result.provider,
        "task_id": result.task_id,
        "seed": result.seed,
        "simulated": candidate.simulated,
        "estimated_cost_usd": result.estimated_cost_usd,
        "estimate_is_assumption": prepared.estimate.assumption,
        "reported_cost_usd": result.reported_cost_usd,
        "source_url_expires_at": time.time() + result.url_ttl_s if result.url_ttl_s else None,
        "timings_s": result.timings,
        "size_bytes": result.size_bytes,
        "created_at": time.time(),
        "attempt_id": journal.record.attempt_id if journal.record else None,
        "checks": {name: passed for name, (passed, _) in results.items()},
        "passed_over": passed_over,
        "after_lost_attempt": after_lost,
        "retake_of": it.retake.of if it.retake else None,
        "last_frame": storage.ref(result.last_frame) if result.last_frame else None,
    }
    await _write_sidecar(storage, it, sidecar)
    return clip_events(
        it,
        candidate,
        storage,
        clip_path,
        sidecar,
        probed,
        thumb,
        results,
        outcome=GENERATED,
        source_url=result.source_url,
    )


async def reuse_stored(
    run_id: str, log: RelayLog, it: Item, storage: SeedanceStorage, store: TaskStore, reuse: Reuse
) -> Events:
    """A clip made earlier from the same request: no provider request at all (copied if it lives elsewhere)."""
    clip_path = storage.clip_path(it.prompt, it.image)
    sidecar = dict(reuse.sidecar)
    if reuse.copy_from is not None:
        await asyncio.to_thread(
            keep_current_version, storage, it.prompt, it.image, reuse.candidate.prepared.fingerprint
        )
        log.info(
            f"{it.where}: same request as the stored {storage.ref(reuse.copy_from)}; copying it (no provider request)"
        )
        await asyncio.to_thread(storage.copy_file, reuse.copy_from, clip_path)
        sidecar.update(image=it.image, prompt=it.prompt, copied_from=storage.ref(reuse.copy_from))
        await _write_sidecar(storage, it, sidecar)
    prepared = reuse.candidate.prepared
    await asyncio.to_thread(
        functools.partial(
            store.create,
            prepared,
            image=it.image,
            prompt=it.prompt,
            run_id=run_id,
            simulated=reuse.candidate.simulated,
            state=AttemptState.REUSED,
            output=clip_path,
            task_id=sidecar.get("task_id"),
        )
    )
    probed, thumb, results = await _probe(storage, clip_path, prepared)
    return clip_events(it, reuse.candidate, storage, clip_path, sidecar, probed, thumb, results, outcome=REUSED)


async def _write_sidecar(storage: SeedanceStorage, it: Item, sidecar: dict) -> None:
    data = json.dumps(sidecar, indent=1, sort_keys=True).encode()
    await asyncio.to_thread(storage.write_bytes, storage.sidecar_path(it.prompt, it.image), data)


def _expected(prepared: PreparedRequest) -> Expected:
    req = prepared.request
    return Expected(prepared.width, prepared.height, req.duration, req.generate_audio, req.camera_fixed)


def sources(prepared: PreparedRequest) -> Sources:
    """The request's images as the content checks compare them (each read at most once per process); an image
    that can no longer be read leaves its thumbnail None, and its check says so."""
    req, width, height = prepared.request, prepared.width, prepared.height
    picked: list[bytes | None] = []

    def read(index: int, ref: str | None) -> bytes:
        if prepared.source_images is not None:
            if not picked:
                picked.extend(prepared.source_images())
            data = picked[index]
            if data is not None:
                return data
        return read_image_bytes(str(ref))

    def thumb(index: int, ref: str | None, sha: str | None):
        try:
            return thumb_of(sha or str(ref), width, height, lambda: read(index, ref))
        except (OSError, ValueError, InvalidRequest):
            return None

    last = thumb(1, req.last_image, prepared.last_image_sha256) if req.last_image else None
    return Sources(thumb(0, req.image, prepared.image_sha256), last, has_last_image=req.last_image is not None)


async def _probe(
    storage: SeedanceStorage, clip_path: str, prepared: PreparedRequest, uploaded: io.BytesIO | None = None
) -> tuple[VideoProbe | None, bytes | None, CheckResults]:
    """Probe the stored MP4 for real (every frame decoded, the content sampled), with a preview of its first
    frame, and judge every check."""
    expected = _expected(prepared)

    def probe() -> VideoProbe:
        if uploaded is not None:
            uploaded.seek(0)
            return probe_video(uploaded, preview_width=320, sample_content=True)
        with storage.fs.open(clip_path, "rb") as fh:
            return probe_video(fh, preview_width=320, sample_content=True)

    # A clip in memory or in a local file is decoded on the probe thread; one read from an object store as it is
    # decoded (a reused clip there) waits on requests, so it goes to the shared workers, as other storage reads do.
    # The source images' thumbnails too: a read of an image no longer in memory is a storage read.
    executor = PROBES if uploaded is not None or storage.is_local else None
    try:
        srcs = await asyncio.to_thread(sources, prepared)
        probed = await asyncio.get_running_loop().run_in_executor(executor, probe)
        return probed, probed.preview_jpeg, evaluate(probed, expected, sources=srcs)
    except (VideoProbeError, OSError) as exc:
        return None, None, evaluate(None, expected, str(exc))
