"""Progress of the long commands (issue 17 §6): a live count on a terminal (rich), plain lines elsewhere, always on
stderr, so stdout (the table, or ``--json``) stays what it was."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from seedance_pipeline.cli import main
from seedance_pipeline.cli.demo_data import write_demo_data

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_off_a_terminal_each_step_is_one_plain_line_on_stderr(made, sim, monkeypatch):
    monkeypatch.setenv("SEEDANCE_SIMULATOR_URL", sim.base_url)
    path = made.path("prompts", "quick-pan.yaml")
    made.write_bytes(path, made.read_bytes(path).replace(b"Gentle", b"Brisk"))
    result = CliRunner().invoke(main, ["run", "--storage", made.root, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True  # stdout is the JSON alone
    lines = result.stderr.splitlines()
    assert any(re.fullmatch(r"run: prompts done in \d+\.\d s", line) for line in lines), lines
    assert any(re.fullmatch(r"run: clips done in \d+\.\d s", line) for line in lines), lines
    assert not any("\x1b" in line for line in lines)  # no terminal codes in a log


def test_on_a_terminal_the_clips_step_counts_the_clips_stored(tmp_path: Path, sim):
    """The real console script with stderr on a pseudo-terminal: the count reaches the clips made."""
    storage = tmp_path / "storage"
    from seedance_pipeline.storage.resource import SeedanceStorage

    write_demo_data(SeedanceStorage(url=str(storage)))
    env = {
        **os.environ,
        "SEEDANCE_STORAGE_URL": str(storage),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SEEDANCE_SIMULATOR_URL": sim.base_url,
        "COLUMNS": "120",
    }
    (tmp_path / "home").mkdir()
    script = Path(sys.executable).parent / "seedance-pipeline"
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(script), "run"], stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path
    )
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=600)
    os.close(controller)
    assert proc.returncode == 0, seen.decode(errors="replace")
    text = ANSI.sub("", seen.decode(errors="replace"))
    assert "run: clips" in text and "5/5" in text, text
    assert "clip(s), estimated $" in out.decode()  # the table still goes to stdout
