"""The CLI's one error boundary: a bad setting ends any command with one line on stderr and exit 2, and
leaves storage as it was (the real console script, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("seedance-pipeline")


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDANCE_") and not k.endswith("_API_KEY")}
    return {**env, "SEEDANCE_STORAGE_URL": str(tmp_path / "storage"), "DAGSTER_HOME": str(tmp_path / "home"), **extra}


BUDGET = ("SEEDANCE_BUDGET_PER_RUN_USD", "abc", "a number of US dollars, e.g. 25 or 2.50")
EXPIRY = ("SEEDANCE_PRESIGN_EXPIRY_S", "soon", "a whole number of seconds, at least 1")
CAP = ("SEEDANCE_MAX_IN_FLIGHT_NOVITA", "0", "a whole number of tasks, at least 1")
CASES = [
    (*BUDGET, ["run"]),
    (*BUDGET, ["forecast"]),
    (*EXPIRY, ["run"]),
    (*EXPIRY, ["tasks", "list"]),
    (*EXPIRY, ["demo-data"]),
    (*CAP, ["forecast"]),
    (*CAP, ["backfill", "--changed", "--dry-run"]),
]


@pytest.mark.parametrize(("setting", "value", "rule", "command"), CASES, ids=[f"{c[0]}-{c[3][0]}" for c in CASES])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, setting, value, rule, command):
    (tmp_path / "home").mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [str(SCRIPT), *command],
        env=_clean_env(tmp_path, **{setting: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines == [f"error: {setting}={value!r} is not allowed: {rule}"], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    # Nothing was written to storage (the Dagster home may hold the instance's config, written first).
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "home"))
    assert [p for p in after if p.parts[0] == "storage"] == [p for p in before if p.parts[0] == "storage"]
