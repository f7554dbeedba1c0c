"""Shared fixtures: a real simulator on loopback, a storage folder, a Dagster test instance."""

from __future__ import annotations

import io
import os

import dagster as dg
import pytest
from PIL import Image

from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.simulator.config import PROVIDERS, ProviderSimConfig, SimConfig
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline.storage.resource import SeedanceStorage

pytest_plugins = (  # fixtures of their own modules, for every test module
    "seedance_pipeline_tests.pg",
    "seedance_pipeline_tests.s3server",
    "seedance_pipeline_tests.simulator_support",
)


@pytest.fixture(autouse=True)
def _event_batching_as_before():
    """The project's event logs set DAGSTER_EVENT_BATCH_SIZE for their process (event_logs ``ask_for_batches``): a
    test that builds one in-process must not change how the tests after it store their events."""
    before = os.environ.get("DAGSTER_EVENT_BATCH_SIZE")
    yield
    if before is None:
        os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
    else:
        os.environ["DAGSTER_EVENT_BATCH_SIZE"] = before


FAST = 0.2  # simulated generation seconds: fast tests, same protocol


def fast_config(**kw) -> SimConfig:
    timing = ProviderSimConfig(latency_min_s=FAST, latency_max_s=FAST)
    return SimConfig(providers=dict.fromkeys(PROVIDERS, timing), **kw)


@pytest.fixture
def sim():
    with SimulatorServer(fast_config()) as server:
        yield server


@pytest.fixture
def storage(tmp_path) -> SeedanceStorage:
    return SeedanceStorage(url=str(tmp_path / "storage"))


@pytest.fixture
def providers(sim) -> SeedanceProviders:
    return SeedanceProviders(simulator_url=sim.base_url, simulator_latency_s=FAST)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def made(storage, providers, instance, sim, monkeypatch):
    """The demo's five clips, made by the simulator, none reviewed yet (reviewer: ana)."""
    from seedance_pipeline.cli.demo_data import write_demo_data
    from seedance_pipeline.cli.runner import run_pipeline

    monkeypatch.setenv("USER", "ana")
    monkeypatch.delenv("LOGNAME", raising=False)
    write_demo_data(storage)
    report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    return storage


def png(size=(800, 450), color=(200, 120, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def put(storage: SeedanceStorage, rel: str, data: bytes | str) -> str:
    path = storage.path(*rel.split("/"))
    storage.write_bytes(path, data.encode() if isinstance(data, str) else data)
    return path


def requests_total(server: SimulatorServer, endpoint: str | None = None) -> int:
    counts = server.sim.stats()["requests"]
    return sum(n for per in counts.values() for ep, n in per.items() if endpoint in (None, ep))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the PostgreSQL cluster is marked ``postgres`` (``make test-quick`` leaves it out)."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
