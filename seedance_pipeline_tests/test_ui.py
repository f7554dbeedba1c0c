"""The Dagster UI after a demo run: ``dagster dev`` on loopback, looked at with headless Chromium.

Needs Debian's chromium (``apt-get install -y chromium``; ``make sysdeps``): without it the test fails.
Screenshots land in the test's tmp dir and are copied to ``$SEEDANCE_UI_SCREENSHOTS`` (default
``<tmp>/ui_screens``) for inspection.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode

import dagster as dg
import pytest

from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.core import settings
from seedance_pipeline.event_logs.instance_config import ensure_instance_config
from seedance_pipeline.lineage.partitions import today_utc
from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS
from seedance_pipeline_tests.dagster_dev import CHROMIUM, CHROMIUM_INSTALL_HINT, DagsterDev, find_chromium, render_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LOCATION = "seedance_pipeline"
REPOSITORY = "__repository__"

IMAGES = ["mountains", "tiles", "tower"]
PROMPTS = ["dusk-dolly", "quick-pan"]
# quick-pan targets mountains and tower only: 5 of the 3 x 2 grid.
DEMO_CLIPS = {"mountains|dusk-dolly", "tiles|dusk-dolly", "tower|dusk-dolly", "mountains|quick-pan", "tower|quick-pan"}
# Six assets in four groups: at 1600x1000 the lineage graph zooms out to names only, without partition counts.
WINDOWS = {"lineage": (2400, 1400)}
ASSETS = {
    "source_images": "sources",
    "prompts": "sources",
    "clips": "clips",
    "selects": "review",
    "galleries": "review",
    "cost_report": "reports",
}

ERROR_TEXTS = ("An error occurred", "Unexpected error", "PythonError", "Failed to load", "Page not found")

ASSET_NODES_QUERY = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on Repository {
      assetNodes {
        assetKey { path }
        groupName
        isPartitioned
        partitionKeysByDimension { name partitionKeys }
        partitionStats { numMaterialized numPartitions numFailed numMaterializing }
        assetPartitionStatuses {
          __typename
          ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
          ... on TimePartitionStatuses { ranges { status startKey endKey } }
          ... on MultiPartitionStatuses {
            primaryDimensionName
            ranges {
              primaryDimStartKey primaryDimEndKey
              secondaryDim { __typename ... on DefaultPartitionStatuses { materializedPartitions } }
            }
          }
        }
      }
    }
  }
}"""

SETTLED_QUERY = """
query ($sensor: SensorSelector!) {
  sensorOrError(sensorSelector: $sensor) { __typename ... on Sensor { sensorState { ticks(limit: 1) { status } } } }
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    __typename ... on Runs { results { runId jobName status } }
  }
}"""


def _materialized(node: dict) -> set[str]:
    """Materialized partition keys from ``assetPartitionStatuses`` (2-D keys as ``image|prompt``)."""
    status = node["assetPartitionStatuses"]
    kind = status["__typename"]
    if kind == "DefaultPartitionStatuses":
        return set(status["materializedPartitions"])
    if kind == "TimePartitionStatuses":
        keys = node["partitionKeysByDimension"][0]["partitionKeys"]
        out = set()
        for r in status["ranges"]:
            if r["status"] == "MATERIALIZED":
                out.update(keys[keys.index(r["startKey"]) : keys.index(r["endKey"]) + 1])
        return out
    assert kind == "MultiPartitionStatuses", kind
    dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
    primary = status["primaryDimensionName"]
    (secondary,) = [name for name in dims if name != primary]
    keys = dims[primary]
    out = set()
    for r in status["ranges"]:
        for p in keys[keys.index(r["primaryDimStartKey"]) : keys.index(r["primaryDimEndKey"]) + 1]:
            for s in r["secondaryDim"]["materializedPartitions"]:
                # Dagster joins multi-partition keys in dimension-name order: "<image>|<prompt>".
                out.add("|".join(v for _, v in sorted({primary: p, secondary: s}.items())))
    return out


def _wait_settled(dev: DagsterDev, timeout_s: float = 40.0) -> float:
    """Wait until the storage sensor has finished a tick and no run is queued or in progress.

    On its first tick after ``dagster dev`` starts, the storage sensor sees the demo's source
    materializations and requests a clips run (mode ``missing``: nothing left to make). While that
    run is in progress the UI shows clips as materializing, so screenshots and counts wait for it.
    """
    start = time.monotonic()
    variables = {
        "sensor": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": "storage_sensor"}
    }
    state = None
    while time.monotonic() - start < timeout_s:
        state = dev.graphql(SETTLED_QUERY, variables)
        ticks = state["sensorOrError"]["sensorState"]["ticks"]
        active = state["runsOrError"]["results"]
        # A tick is STARTED while it evaluates (its run may not exist yet); then SUCCESS, SKIPPED or FAILURE.
        if ticks and ticks[0]["status"] != "STARTED" and not active:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(
        f"runs still in progress (or no finished sensor tick) after {timeout_s:.0f} s: {state}\n{dev.tail()}"
    )


def _card(texts: list[str], name: str) -> list[str]:
    """The text of an asset node in the graph: its name up to the next node's name."""
    starts = [i for i in range(len(texts) - 1) if texts[i + 1] == "Latest event"]
    for n, i in enumerate(starts):
        if texts[i] == name:
            end = starts[n + 1] if n + 1 < len(starts) else len(texts)
            return texts[i:end]
    raise AssertionError(f"no asset node {name!r} in the rendered graph; page text: {' | '.join(texts)}")


def _loaded(texts: list[str]) -> bool:
    """No spinner text left (asset nodes say "Loading..." until their live data arrives)."""
    return not any(t.startswith("Loading") for t in texts)


def _child_env(home: Path, storage_url: str) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), settings.STORAGE_URL.name: storage_url}
    # The code location resolves providers from the environment: make sure no real provider can be reached.
    for provider in PROVIDERS:
        env.pop(ADAPTER_CLASSES[provider].env_key, None)
        env.pop(settings.base_url(provider).name, None)
    env.pop(settings.S3_ENDPOINT_URL.name, None)
    return env


def _keep(shot: Path) -> Path:
    dest = Path(os.environ.get("SEEDANCE_UI_SCREENSHOTS") or Path(tempfile.gettempdir()) / "ui_screens")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, dest / shot.name)
    return dest / shot.name


def test_ui_shows_every_asset_and_its_partitions(tmp_path, storage, providers):
    if find_chromium() is None:
        pytest.fail(f"the UI test needs headless Chromium at {CHROMIUM}: {CHROMIUM_INSTALL_HINT}", pytrace=False)
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    # 1. A demo run on a file-backed instance (the one dagster dev will serve).
    home = tmp_path / "dagster_home"
    ensure_instance_config(home)  # the embedded default, as `make ui` / `seedance-pipeline run` write it
    write_demo_data(storage)
    day = today_utc()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        report = run_pipeline(instance, storage, providers)
    assert report.ok, report.failures
    assert {r.clip for r in report.clips} == DEMO_CLIPS
    timings["demo run"] = time.monotonic() - t0

    shots = tmp_path / "screens"
    shots.mkdir()
    kept: list[Path] = []
    attempts: dict[str, int] = {}
    dev = DagsterDev(REPO / "workspace.yaml", REPO, _child_env(home, storage.url), tmp_path / "dagster_dev.log")
    try:
        # 2. dagster dev on loopback, in its own process group.
        dev.start()
        timings["dagster dev ready"] = dev.wait_ready(timeout_s=60)
        timings["runs settled"] = _wait_settled(dev)
        t = time.monotonic()

        # 3. No "Join the Dagster community" pop-up over the screenshots.
        assert dev.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True

        # 4. GraphQL: every asset in the code location, with the demo's partitions.
        data = dev.graphql(
            ASSET_NODES_QUERY, {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}}
        )
        repo = data["repositoryOrError"]
        assert repo["__typename"] == "Repository", repo
        nodes = {"/".join(n["assetKey"]["path"]): n for n in repo["assetNodes"]}
        assert set(nodes) == set(ASSETS)
        assert {k: n["groupName"] for k, n in nodes.items()} == ASSETS
        assert all(n["isPartitioned"] for n in nodes.values())
        dims = {k: {d["name"]: d["partitionKeys"] for d in n["partitionKeysByDimension"]} for k, n in nodes.items()}
        assert dims["source_images"] == {"default": IMAGES}
        assert dims["prompts"] == {"default": PROMPTS}
        assert dims["clips"] == dims["selects"] == {"image": IMAGES, "prompt": PROMPTS}
        assert dims["galleries"] == {"default": PROMPTS}
        assert day in dims["cost_report"]["default"]
        days = len(dims["cost_report"]["default"])
        materialized = {k: _materialized(n) for k, n in nodes.items()}
        assert materialized == {
            "source_images": set(IMAGES),
            "prompts": set(PROMPTS),
            "clips": DEMO_CLIPS,
            "selects": set(),  # nothing approved yet
            "galleries": set(PROMPTS),  # `run` built the sheets of the prompts it made takes for
            "cost_report": {day},
        }
        stats = {k: n["partitionStats"] for k, n in nodes.items()}
        expected_stats = {
            "source_images": (3, 3),
            "prompts": (2, 2),
            "clips": (5, 6),
            "selects": (0, 6),
            "galleries": (2, 2),
            "cost_report": (1, days),
        }
        for key, (done, total) in expected_stats.items():
            assert stats[key] == {
                "numMaterialized": done,
                "numPartitions": total,
                "numFailed": 0,
                "numMaterializing": 0,
            }, (key, stats[key])
        timings["graphql"] = time.monotonic() - t

        # 5. Headless Chromium, both pages at once: a screenshot and the rendered DOM of each.
        t = time.monotonic()
        groups = sorted(set(ASSETS.values()))
        expanded = ",".join(f"global@global:{g}" for g in groups)  # the UI's group ids (see groupIdForNode)
        partition_query = {"view": "partitions", "partition": "mountains|dusk-dolly"}
        pages = {
            # The global asset lineage with every group expanded: every asset node and its partitions.
            "lineage": f"{dev.base_url}/asset-groups?{urlencode({'expanded': expanded}, quote_via=quote)}",
            # The clips partitions tab with one partition selected: the 2-D grid, the counts, the key.
            "clips_partitions": f"{dev.base_url}/assets/clips?{urlencode(partition_query, quote_via=quote)}",
        }
        partition_texts = [
            "6 Partitions Selected",
            "Materialized (5)",
            "Missing (1)",
            "Failed (0)",
            "Materializing (0)",
            *IMAGES,
            *PROMPTS,
            "mountains|dusk-dolly",
            "clips_job",
        ]
        ready = {
            "lineage": lambda texts: (
                _loaded(texts) and all(f"{total:,} partitions" in texts for _, total in expected_stats.values())
            ),
            "clips_partitions": lambda texts: _loaded(texts) and all(x in texts for x in partition_texts),
        }
        with ThreadPoolExecutor(len(pages)) as pool:
            futures = {
                name: pool.submit(
                    render_until,
                    url,
                    tmp_path / f"chromium-{name}",
                    shots / f"{name}.png",
                    ready[name],
                    deadline_s=40,
                    window=WINDOWS.get(name, (1600, 1000)),
                )
                for name, url in pages.items()
            }
            rendered = {name: f.result() for name, f in futures.items()}
        kept.extend(_keep(shots / f"{name}.png") for name in pages)
        timings["chromium (2 pages)"] = time.monotonic() - t
        attempts = {name: n for name, (_, n) in rendered.items()}

        texts = rendered["lineage"][0]
        page = " | ".join(texts)
        assert "Global asset lineage" in texts, page
        assert _loaded(texts), page
        assert "Join the Dagster community" not in page, "the community pop-up is still covering the page"
        assert not any(e in page for e in ERROR_TEXTS), page
        for key, (done, total) in expected_stats.items():
            card = _card(texts, key)
            assert f"{total:,} partitions" in card, (key, card)
            assert f"{math.floor(done / total * 100)}% filled" in card, (key, card)  # as the UI computes it

        texts = rendered["clips_partitions"][0]
        page = " | ".join(texts)
        assert "Join the Dagster community" not in page, "the community pop-up is still covering the page"
        assert not any(e in page for e in ERROR_TEXTS), page
        assert _loaded(texts), page
        for text in partition_texts:
            assert text in texts, (text, page)
        # The selected partition's panel: its key, its status, and the metadata of the demo's clip.
        panel = texts[texts.index("mountains|dusk-dolly") :]
        assert "Materialized" in panel[:4], panel[:10]
        assert str(storage.path("clips", "dusk-dolly", "mountains.mp4")) in panel, panel
    finally:
        dev.stop()
        timings["stop dagster dev"] = dev.stop_seconds or 0.0
        timings["total"] = time.monotonic() - t0
        print(
            "\nUI test timings (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
            + f"; chromium attempts: {attempts}; SIGKILL needed: {dev.killed}"
            + f"; screenshots: {', '.join(map(str, kept)) or 'none'}"
        )
    if dev.killed:  # cleanup only: worth a look, not a UI failure
        warnings.warn(
            f"dagster dev needed SIGKILL after {dev.stop_seconds:.0f} s; still running: {dev.leftovers}", stacklevel=1
        )
