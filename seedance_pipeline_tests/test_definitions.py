"""The code location as Dagster's own tools see it: `dagster definitions validate`, groups, kinds, owners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from seedance_pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]


def test_dagster_definitions_validate_passes_on_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SEEDANCE_STORAGE_URL": str(tmp_path / "storage")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = str(Path(sys.executable).with_name("dagster"))
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_every_asset_has_a_group_kinds_owners_and_a_description():
    graph = defs.resolve_asset_graph()
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.owners == ["team:creative-ops"], key
        assert node.kinds, key
        groups[key.to_user_string()] = node.group_name
    assert groups == {
        "source_images": "sources",
        "prompts": "sources",
        "clips": "clips",
        "selects": "review",
        "galleries": "review",
        "cost_report": "reports",
    }
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {
        "plays_to_end",
        "matches_request",
        "looks_as_requested",
    }
    assert {s.name for s in defs.sensors} == {"storage_sensor", "pending_tasks_sensor", "review_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_the_readme_lists_every_setting_with_its_default():
    """The README's configuration table and core/settings.py name the same variables and defaults."""
    import re
    from pathlib import Path

    from seedance_pipeline.core import settings

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration (environment)", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        names, _, default = (cell.strip() for cell in line.strip("|").split("|"))
        for name in re.findall(r"`(SEEDANCE_[A-Z0-9_<>]+)`", names):
            rows[name] = default
    from seedance_pipeline.providers import ADAPTER_CLASSES

    every = (*settings.ALL, *(s for cls in ADAPTER_CLASSES.values() for s in cls.settings))  # adapters' own too
    for setting in every:
        assert setting.name in rows, f"{setting.name} is missing from the README's configuration table"
        shown = setting.shown_default or f"`{setting.default:g}`"
        assert rows[setting.name] == shown, (setting.name, rows[setting.name], shown)
    assert set(rows) == {s.name for s in every}, set(rows) ^ {s.name for s in every}


def test_importing_the_code_location_changes_no_warning_filter_and_imports_no_pandas():
    """Loading the definitions (every Dagster process does) raises no warning, leaves the process's warning
    filters as they were, and does not import pandas, which only the cost report needs. numpy (the content checks
    use it) adds filters of its own when first imported, so it is imported before the filters are compared: what
    is asserted is that our code changes none."""
    import subprocess
    import sys

    probe = (
        "import sys, warnings, numpy; before = list(warnings.filters); import seedance_pipeline.definitions; "
        "assert warnings.filters == before, 'warning filters changed'; "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
