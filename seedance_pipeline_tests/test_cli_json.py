"""Every command that prints a table also prints JSON with ``--json`` (issue 17 §6): the same facts, as data."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from seedance_pipeline.cli import main


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("SEEDANCE_") or k.endswith("_API_KEY"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("SEEDANCE_STORAGE_URL", str(tmp_path / "storage"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()


def run(*args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_forecast_run_backfill_and_tasks_speak_json(env):
    CliRunner().invoke(main, ["demo-data"])
    planned = run("forecast", "--json")
    assert len(planned["clips"]) == 5 and not planned["failures"]
    assert planned["total_usd"] == pytest.approx(sum(c["usd"] for c in planned["clips"]))
    assert {p: v["clips"] for p, v in planned["by_provider"].items()} == {"novita": 3, "runpod": 2}

    made = run("run", "--json")
    assert made["ok"] is True and made["failures"] == []
    assert {c["clip"]: c["outcome"] for c in made["clips"]} == {c["partition"]: "generated" for c in planned["clips"]}
    assert made["cost_report"].endswith("cost_report.md")

    again = run("forecast", "--json", "--mode", "all")
    assert all(c["reused"] and c["usd"] == 0 for c in again["clips"]) and len(again["clips"]) == 5
    nothing = run("backfill", "--changed", "--missing", "--dry-run", "--json")
    assert (nothing["clips"], nothing["launched"], nothing["dry_run"]) == ([], [], True)
    assert run("tasks", "list", "--json") == {"open": [], "lost": []}
