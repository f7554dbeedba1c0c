"""What the poll schedules learned is kept in storage (production/latency.py): the next run's clients start from
it, several writers merge instead of overwriting, the simulator's durations never seed the real provider's, and a
file that cannot be read costs only the warm start."""

from __future__ import annotations

import json

import dagster as dg

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.production.latency import LatencyMemory, route_key
from seedance_pipeline.providers import get_adapter
from seedance_pipeline.providers.engine import ClientSettings, ProviderClient
from seedance_pipeline.providers.engine.schedule import Sample
from seedance_pipeline.storage import layout
from seedance_pipeline_tests.conftest import png, put


def _client() -> ProviderClient:
    return ProviderClient(get_adapter("novita"), "k", base_url="http://127.0.0.1:9", settings=ClientSettings())


def _learned(client: ProviderClient, shape: str, *durations: float, at: float = 1000.0) -> None:
    for i, d in enumerate(durations):
        client.schedules.of(shape).observe(d, running_at_s=d - 0.5, at=at + i)


def test_two_processes_saving_at_once_keep_both_what_each_learned(storage):
    one, two = LatencyMemory(storage), LatencyMemory(storage)  # both read the file before either wrote
    a, b = _client(), _client()
    _learned(a, "480p/4s/silent", 70, 71)
    _learned(b, "480p/4s/silent", 90, at=2000.0)
    _learned(b, "1080p/12s/audio", 200, at=2001.0)
    one.save({"novita": (a, "novita")})
    two.save({"novita": (b, "novita")})

    seeded = _client()
    LatencyMemory(storage).seed({"novita": (seeded, "novita")})
    assert [hi for _, hi in seeded.schedules.of("480p/4s/silent").learned] == [70, 71, 90]  # oldest first
    assert [hi for _, hi in seeded.schedules.of("1080p/12s/audio").learned] == [200]
    assert not seeded.schedules.of("480p/4s/silent").probing


def test_the_simulators_durations_never_seed_the_real_provider(storage):
    sim_client = _client()
    _learned(sim_client, "480p/4s/silent", 2.0)
    LatencyMemory(storage).save({"novita": (sim_client, route_key("novita", simulated=True))})
    real = _client()
    LatencyMemory(storage).seed({"novita": (real, route_key("novita", simulated=False))})
    assert real.schedules.samples() == {} and real.schedules.of("480p/4s/silent").probing


def test_only_the_newest_samples_are_kept(storage):
    memory, client = LatencyMemory(storage), _client()
    _learned(client, "s", *range(10, 70))  # 60 tasks, one schedule keeps 50
    memory.save({"novita": (client, "novita")})
    later = _client()
    _learned(later, "s", 500, at=5000.0)
    LatencyMemory(storage).save({"novita": (later, "novita")})
    kept = json.loads(storage.read_bytes(storage.path(layout.latency())))["novita"]["s"]
    assert len(kept) == 50 and kept[-1][1] == 500 and kept[0][1] == 21  # 10..20 dropped, then 21 for the newest


def test_a_file_that_cannot_be_read_costs_the_warm_start_and_nothing_else(storage):
    path = storage.path(layout.latency())
    storage.write_bytes(path, b"{not json")
    client = _client()
    LatencyMemory(storage).seed({"novita": (client, "novita")})
    assert client.schedules.samples() == {}
    storage.write_bytes(
        path, json.dumps({"novita": {"s": [[1, 2, True, 3], ["x", 2, True, 3], [5, 4, True, 1]]}}).encode()
    )
    LatencyMemory(storage).seed({"novita": (client, "novita")})
    assert client.schedules.of("s").samples() == (Sample(1.0, 2.0, True, 3.0),)  # the two bad rows left out


def test_a_run_keeps_what_it_learned_for_the_next_one(storage, providers, sim):
    put(storage, "images/lake.png", png())
    put(storage, "prompts/dawn.yaml", "text: a calm lake\nprovider: novita\nduration: 4\nresolution: 480p\n")
    with dg.instance_for_test() as instance:
        assert run_pipeline(instance, storage, providers).ok
    kept = json.loads(storage.read_bytes(storage.path(layout.latency())))
    [(lo, hi, bracketed, _)] = kept["novita@simulator"]["480p/4s/silent"]
    assert 0 < lo <= hi
