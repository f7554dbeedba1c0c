"""What the review-loop tests share: the review CLI driven in-process, and its list as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from seedance_pipeline.cli import main

DEMO_CLIPS = {"mountains|dusk-dolly", "tiles|dusk-dolly", "tower|dusk-dolly", "mountains|quick-pan", "tower|quick-pan"}


def cli(storage, *args: str, ok: bool = True):
    """``seedance-pipeline <group> <command> --storage <root> ...``; asserts exit 0 unless ``ok=False``."""
    result = CliRunner().invoke(main, [*args[:2], "--storage", storage.root, *args[2:]])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def listed(storage, *args: str) -> dict[str, dict]:
    return {r["clip"]: r for r in json.loads(cli(storage, "review", "list", "--json", *args).stdout)}
