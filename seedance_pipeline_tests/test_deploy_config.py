"""deploy/dagster.yaml: Dagster's own schema accepts it, and an instance built from it on a real Postgres
server has exactly the limits the README documents. Also the env-driven in-run caps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from seedance_pipeline.core import settings
from seedance_pipeline.defs.assets.clips import clips
from seedance_pipeline.lineage.names import PROVIDER_TAG
from seedance_pipeline.providers import PROVIDERS
from seedance_pipeline.providers.engine import ClientSettings
from seedance_pipeline.providers.resource import SeedanceProviders

REPO = Path(__file__).resolve().parents[1]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")

# What the README ("Running in production") promises about deploy/dagster.yaml.
RUNS_PER_PROVIDER = 2
MAX_CONCURRENT_RUNS = 10
CLIPS_POOL = "seedance_clips"
POOL_DEFAULT_LIMIT = 10


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    return home


def test_deploy_yaml_passes_dagsters_instance_schema(tmp_path):
    config, custom_class = dagster_instance_config(str(_home(tmp_path)))
    assert custom_class is None
    assert "storage" not in config  # one block per storage, so the event log can be ours
    parts = ("run_storage", "event_log_storage", "schedule_storage")
    assert {p: config[p]["class"] for p in parts} == {
        "run_storage": "PostgresRunStorage",
        "event_log_storage": "PooledPostgresEventLogStorage",
        "schedule_storage": "PostgresScheduleStorage",
    }
    pg = config["run_storage"]["config"]["postgres_db"]
    assert all(config[p]["config"] == {"postgres_db": pg} for p in parts)  # one database for all three
    # Every connection setting comes from the environment, none is written in the file.
    assert {k: v for k, v in pg.items() if k != "scheme"} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }
    assert pg["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # The tag the limits key on is the one the pipeline puts on its runs.
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits == [{"key": PROVIDER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": RUNS_PER_PROVIDER}]


def test_deploy_yaml_rejects_a_broken_copy(tmp_path):
    """The schema check above can fail: a limit given as text is refused by the same call."""
    home = _home(tmp_path)
    data = yaml.safe_load(DEPLOY_YAML.read_text())
    data["concurrency"]["runs"]["tag_concurrency_limits"][0]["limit"] = "two"
    (home / "dagster.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(dg.DagsterInvalidConfigError, match="limit"):
        dagster_instance_config(str(home))


def test_instance_from_deploy_yaml_on_live_postgres(tmp_path, pg_server, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from seedance_pipeline.event_logs.postgres import PooledPostgresEventLogStorage

    db = pg_server.create_database("deploy_config")
    for name, value in pg_server.dagster_env(db).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(_home(tmp_path))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"

        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config  # what the run-queue daemon reads
        assert queue.max_concurrent_runs == MAX_CONCURRENT_RUNS
        assert queue.tag_concurrency_limits == [
            {"key": PROVIDER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": RUNS_PER_PROVIDER}
        ]
        assert concurrency.pool_config.default_pool_limit == POOL_DEFAULT_LIMIT
        assert concurrency.pool_config.pool_granularity.value == "op"
        # An unconfigured pool gets the default limit the moment a step first claims it.
        assert instance.event_log_storage.initialize_concurrency_limit_to_default(CLIPS_POOL)
        assert instance.event_log_storage.get_concurrency_info(CLIPS_POOL).slot_count == POOL_DEFAULT_LIMIT

        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False  # crashed workers only
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 7200
        assert instance.run_monitoring_start_timeout_seconds == 300
        assert not instance.telemetry_enabled

        # Writes land in the server's tables, through the password from the environment.
        instance.add_dynamic_partitions("images", ["probe"])
    conn = pg_server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'images'")
            assert cur.fetchall() == [("probe",)]
    finally:
        conn.close()


def test_deploy_yaml_needs_every_pg_variable(tmp_path, monkeypatch):
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(Exception, match="DAGSTER_PG_"):
        dg.DagsterInstance.from_config(str(_home(tmp_path)))


def test_clips_asset_is_in_the_pool_the_yaml_configures():
    assert clips.op.pool == CLIPS_POOL


# -- the in-run half of a provider's cap ----------------------------------------------------------------


def test_in_flight_caps_come_from_the_environment(monkeypatch):
    for p in PROVIDERS:
        monkeypatch.delenv(settings.max_in_flight(p).name, raising=False)
    monkeypatch.setenv("SEEDANCE_MAX_IN_FLIGHT_RUNPOD", "2")
    monkeypatch.setenv("SEEDANCE_MAX_IN_FLIGHT_NOVITA", " 8 ")
    res = SeedanceProviders.from_env()
    assert res.max_in_flight == {"runpod": 2, "novita": 8}

    def cap(p: str) -> int:
        client_settings = res.settings_for(res.route(p))
        assert isinstance(client_settings, ClientSettings)
        return client_settings.max_in_flight

    assert (cap("runpod"), cap("novita"), cap("wavespeed")) == (2, 8, settings.DEFAULT_MAX_IN_FLIGHT)


@pytest.mark.parametrize("raw", ["0", "-1", "four", "2.5"])
def test_in_flight_cap_must_be_a_positive_whole_number(monkeypatch, raw):
    monkeypatch.setenv("SEEDANCE_MAX_IN_FLIGHT_WAVESPEED", raw)
    with pytest.raises(ValueError, match="SEEDANCE_MAX_IN_FLIGHT_WAVESPEED"):
        SeedanceProviders.from_env()


def test_poll_prior_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEEDANCE_RUNPOD_BASE_URL", "http://127.0.0.1:9/runpod")
    monkeypatch.delenv(settings.EXPECTED_LATENCY_S.name, raising=False)
    default = SeedanceProviders.from_env()
    assert default.settings_for(default.route("runpod")).expected_latency_s == 60.0
    monkeypatch.setenv(settings.EXPECTED_LATENCY_S.name, "90")
    res = SeedanceProviders.from_env()
    assert res.settings_for(res.route("runpod")).expected_latency_s == 90.0
    monkeypatch.setenv(settings.EXPECTED_LATENCY_S.name, "soon")
    with pytest.raises(ValueError, match=settings.EXPECTED_LATENCY_S.name):
        SeedanceProviders.from_env()


def test_without_the_simulator_extra_an_unconfigured_provider_is_a_clear_error(monkeypatch):
    """The production image has no `simulator` extra: a provider with neither key nor base URL must say so
    (and how to install it), not fail on an ImportError deep in a run."""
    import sys

    from seedance_pipeline.core.errors import SeedanceError

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what `import uvicorn` meets where it is not installed
    monkeypatch.delitem(sys.modules, "seedance_pipeline.simulator.server", raising=False)
    for p in PROVIDERS:
        monkeypatch.delenv(settings.base_url(p).name, raising=False)
    providers = SeedanceProviders(base_urls={"runpod": "http://127.0.0.1:9/runpod"})
    with pytest.raises(
        SeedanceError, match=r"not installed \(uvicorn is missing: pip install 'seedance-pipeline\[simulator\]'\)"
    ):
        providers.simulator_base()
    assert not providers.route("runpod").simulated and providers.route("novita").simulated
