"""A run keeps an image's bytes in memory only while a request that carries them is sent (``core.images.HeldBytes``,
``planning/images.py``): not every image of the run from its start to its end (benchmarks/README.md, M30)."""

from __future__ import annotations

import json
import threading

import pytest

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.core import images as core_images
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.images import HeldBytes
from seedance_pipeline.planning.images import ImageFacts, ImageLoader, record_facts
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.storage.resource import SeedanceStorage
from seedance_pipeline_tests.conftest import FAST, png, put


def test_bytes_are_kept_only_while_held_and_two_holders_share_one_read():
    loads = []
    held = HeldBytes(lambda: loads.append(1) or b"pixels")
    assert held() == b"pixels" and held() == b"pixels"
    assert len(loads) == 2  # not held: read each time, kept by nobody
    with held.held():
        with held.held():
            assert held() == b"pixels"
        assert held() == b"pixels"  # the outer holder still keeps them
    assert len(loads) == 3
    assert held._data is None  # the last holder gone, the bytes go too


def _loader_with_facts(storage: SeedanceStorage, key: str) -> ImageLoader:
    put(storage, f"images/{key}.png", png(color=(10, 20, 30)))
    first = ImageLoader(storage)
    facts = {key: ImageFacts.of(first(key), first._stored[key].stamp)}
    record_facts(storage, facts)
    return ImageLoader(storage)


def test_an_image_with_facts_is_planned_without_reading_it_and_refused_if_it_changed(storage, monkeypatch):
    loader = _loader_with_facts(storage, "dune")
    reads = []
    read_bytes = SeedanceStorage.read_bytes
    monkeypatch.setattr(SeedanceStorage, "read_bytes", lambda self, path: reads.append(path) or read_bytes(self, path))
    loader.preload({"dune"})
    img = loader("dune")
    assert reads == [] and (img.width, img.height) == (800, 450)
    assert img.data[:8] == b"\x89PNG\r\n\x1a\n" and len(reads) == 1
    # The same size and a new colour: what the plan priced is not what would be sent.
    storage.fs.pipe_file(storage.path("images", "dune.png"), png(color=(30, 20, 10)))
    with pytest.raises(InvalidRequest) as err:
        _ = img.data
    assert err.value.field == "image" and "changed" in str(err.value)


def test_an_image_without_facts_is_inspected_at_once_and_its_bytes_not_kept(storage):
    put(storage, "images/tall.png", png(size=(360, 640)))
    loader = ImageLoader(storage)
    loader.preload({"tall"})
    img = loader("tall")
    assert (img.width, img.height) == (360, 640)
    assert isinstance(img.read, HeldBytes) and img.read._data is None


def test_a_run_keeps_at_most_its_in_flight_images_and_reads_each_once_per_clip(storage, instance, sim, monkeypatch):
    """Eight clips, two in flight: each image is read once for its intent, its wire body and its content checks'
    thumbnail together; at no time do more than two images sit in memory, and none once the run is over."""
    keys = [f"img{i}" for i in range(8)]
    for i, key in enumerate(keys):
        put(storage, f"images/{key}.png", png(color=(20 * i, 100, 200 - 10 * i)))
    put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: novita\nduration: 4\nresolution: 480p\n')
    providers = SeedanceProviders(simulator_url=sim.base_url, simulator_latency_s=FAST, max_in_flight={"novita": 2})

    lock, alive, most, loads = threading.Lock(), [], [0], []
    init, call = HeldBytes.__init__, HeldBytes.__call__

    def tracked_init(self, load):
        init(self, load)
        with lock:
            alive.append(self)

    def tracked_call(self):
        kept_before = self._data is not None
        data = call(self)
        with lock:
            if not kept_before:
                loads.append(self)
            most[0] = max(most[0], sum(h._data is not None for h in alive))
        return data

    monkeypatch.setattr(core_images.HeldBytes, "__init__", tracked_init)
    monkeypatch.setattr(core_images.HeldBytes, "__call__", tracked_call)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert sorted(c.clip for c in report.clips) == sorted(f"{k}|wave" for k in keys)
    assert sim.sim.stats()["requests"]["novita"]["submit"] == len(keys)
    assert len(loads) == len(keys)  # one read per clip sent: the thumbnail came from the bytes sent
    assert 1 <= most[0] <= 2
    assert all(h._data is None for h in alive)
    for key in keys:  # the thumbnail taken while the bytes were held fed the check that compares them
        sidecar = json.loads(storage.read_bytes(storage.sidecar_path("wave", key)))
        assert sidecar["checks"]["resembles_source"] is True


def test_an_image_replaced_after_the_plan_is_refused_before_its_intent_and_the_other_clips_go_on(
    storage, instance, sim, providers, monkeypatch
):
    """The file changes between the plan (which priced it from its facts) and the submit: that clip fails naming
    the image and the rule, leaves no attempt and sends nothing; the run's other clips are made."""
    import time

    from seedance_pipeline.ledger.store import TaskStore
    from seedance_pipeline.planning import images as planning_images

    for key, colour in (("calm", (10, 80, 160)), ("storm", (160, 80, 10))):
        put(storage, f"images/{key}.png", png(color=colour))
    put(storage, "prompts/wave.yaml", 'text: "a slow wave"\nprovider: novita\nduration: 4\nresolution: 480p\n')
    read_as_recorded = planning_images.ImageLoader._read_as_recorded

    def replaced_first(self, path, sha256):
        if path.endswith("storm.png"):  # another picture under the same name, once the plan was made
            storage.fs.pipe_file(path, png(color=(1, 2, 3)))
        return read_as_recorded(self, path, sha256)

    monkeypatch.setattr(planning_images.ImageLoader, "_read_as_recorded", replaced_first)
    report = run_pipeline(instance, storage, providers)
    assert not report.ok
    assert [c.clip for c in report.clips] == ["calm|wave"]
    assert len(report.failures) == 1
    failure = report.failures[0]
    assert "storm|wave" in failure and "image=" in failure and "storm.png" in failure and "changed" in failure
    assert sim.sim.stats()["requests"]["novita"]["submit"] == 1
    attempts = TaskStore(storage).records_since(time.time() - 3600)
    assert [r.image for r in attempts] == ["calm"]


def test_taking_or_leaving_a_hold_never_waits_for_a_read_in_progress():
    """Holds are taken and left on the production's event loop: a slow storage read of the same image on a worker
    thread must not block them."""
    reading, release = threading.Event(), threading.Event()

    def slow() -> bytes:
        reading.set()
        release.wait(10)
        return b"pixels"

    held = HeldBytes(slow)
    reader = threading.Thread(target=held)
    reader.start()
    assert reading.wait(10)
    with held.held():  # entered while the read above is still going on (it would otherwise end first, timed out)
        entered_during_the_read = reader.is_alive()
    release.set()
    reader.join(10)
    assert entered_during_the_read and not reader.is_alive()
