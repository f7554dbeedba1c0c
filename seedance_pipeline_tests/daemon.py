"""``dagster-daemon run`` as a subprocess in its own process group, for tests that need the run queue,
backfills or sensors to run for real (the daemon is what executes them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from seedance_pipeline_tests.dagster_dev import _default_signals

REPO = Path(__file__).resolve().parents[1]


class DagsterDaemon:
    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = REPO):
        self.env, self.log_path, self.cwd = env, log_path, cwd
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDaemon:
        daemon = str(Path(sys.executable).with_name("dagster-daemon"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [daemon, "run", "-w", str(self.cwd / "workspace.yaml")],
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 180.0, every_s: float = 0.5):
        """Poll ``condition`` until it holds; fail with the daemon's log tail if the daemon dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"dagster-daemon exited ({self.proc.returncode}) while waiting for {what}:\n" + self.log()[-4000:]
                )
            time.sleep(every_s)
        raise AssertionError(
            f"timed out after {timeout_s:.0f} s waiting for {what}; daemon log tail:\n" + self.log()[-4000:]
        )
