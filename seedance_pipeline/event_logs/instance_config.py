"""The embedded default instance's ``dagster.yaml``: what ``make`` and ``seedance-pipeline run`` write.

Kept apart from the runner so that writing the file imports neither Dagster nor the code location."""

from __future__ import annotations

from pathlib import Path

import yaml


def embedded_instance_config(home: Path) -> dict:
    """The embedded default instance in ``home``: Dagster's SQLite files in Dagster's own layout, with the event
    log keeping its connections between events (seedance_pipeline/event_logs/)."""
    return {
        "telemetry": {"enabled": False},
        "event_log_storage": {
            "module": "seedance_pipeline.event_logs.sqlite",
            "class": "PooledSqliteEventLogStorage",
            "config": {"base_dir": str(home.resolve() / "history" / "runs")},
        },
    }


def ensure_instance_config(home: Path) -> Path:
    """``home``/dagster.yaml, written with the embedded default if there is none (an existing one is kept)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(
            "# Written by seedance-pipeline for this folder: the embedded default instance.\n"
            + yaml.safe_dump(embedded_instance_config(home), sort_keys=False)
        )
    return config
