"""Helpers for the UI test: ``dagster dev`` in its own process group, GraphQL, headless Chromium.

Stopping ``dagster dev``: it maps SIGTERM to its SIGINT handler, so when it inherits an *ignored*
SIGINT (anything started with ``&`` from a shell without job control, e.g. a CI script)
it ignores SIGTERM too and hangs until SIGKILL. So the child gets SIGINT/SIGTERM reset to their
defaults, runs in its own session (process group), and is stopped by signalling the whole group.
Chromium is Debian's ``/usr/bin/chromium`` (``apt-get install -y chromium``), driven by its own
command line (``--screenshot`` / ``--dump-dom``), so no browser-automation package is needed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_INSTALL_HINT = (
    "install Debian's chromium: `sudo apt-get update && sudo apt-get install -y chromium` (or `make sysdeps`)"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--hide-scrollbars",
    "--mute-audio",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def find_chromium() -> str | None:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


class DagsterDev:
    """``dagster dev -w workspace.yaml -h 127.0.0.1 -p <port>`` as a subprocess; use as a context manager."""

    def __init__(self, workspace: Path, cwd: Path, env: dict[str, str], log_path: Path, port: int | None = None):
        self.workspace, self.cwd, self.env, self.log_path = workspace, cwd, env, log_path
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._http = httpx.Client(trust_env=False)  # loopback: never through a proxy from the environment
        self.stop_seconds: float | None = None  # how long stopping took
        self.killed = False  # True when SIGTERM was not enough
        self.leftovers: list[str] = []  # what was still running when SIGKILL was sent

    def __enter__(self) -> DagsterDev:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        dagster = Path(sys.executable).with_name("dagster")
        cmd = [
            str(dagster) if dagster.exists() else "dagster",
            "dev",
            "-w",
            str(self.workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open while dagster dev runs; closed in stop())
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Poll until the webserver answers and the code location is loaded; return the seconds waited."""
        start = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - start < timeout_s:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"dagster dev exited with code {self.proc.returncode} before answering; last output:\n{self.tail()}"
                )
            try:
                if self._http.get(f"{self.base_url}/server_info", timeout=2).status_code == 200:
                    data = self.graphql(
                        "{ workspaceOrError { ... on Workspace { locationEntries {"
                        " name loadStatus locationOrLoadError { __typename"
                        " ... on PythonError { message } } } } } }"
                    )
                    entries = data["workspaceOrError"]["locationEntries"]
                    last = f"locations: {entries}"
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        errors = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                        if errors:
                            raise AssertionError(f"code location failed to load: {errors}\n{self.tail()}")
                        return time.monotonic() - start
            except (httpx.HTTPError, KeyError, TypeError) as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise AssertionError(
            f"dagster dev did not answer on {self.base_url} within {timeout_s:.0f} s ({last});"
            f" last output:\n{self.tail()}"
        )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        resp = self._http.post(
            f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _group_members(self) -> list[str]:
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:  # pgrp
                    cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    members.append(f"{stat.parent.name} {fields[0]} {cmd[:160]}")
            except (OSError, IndexError, ValueError):
                continue
        return members

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def _wait(self, until: float, group: bool) -> bool:
        """Wait for the leader (and, with ``group``, every process of the group) to exit; True if done."""
        while True:
            done = self.proc.poll() is not None and not (group and self._group_alive())
            if done or time.monotonic() >= until:
                return done
            time.sleep(0.1)

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop dagster dev and everything in its process group, within about ``grace_s`` + 5 s.

        SIGTERM goes to ``dagster dev`` first: it shuts the webserver and the daemon down through their
        shutdown pipes, then its code servers, in that order (signalling the whole group at once can
        take the code server away under a sensor tick in flight, and the daemon then waits up to 30 s
        per thread). Whatever is still in the group after that gets SIGTERM, then SIGKILL.
        """
        if self.proc is not None and self.stop_seconds is None:
            start = time.monotonic()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self._wait(start + grace_s, group=False)
            if not self._wait(time.monotonic() + 2, group=True):
                self._signal_group(signal.SIGTERM)
                if not self._wait(time.monotonic() + 5, group=True):
                    self.killed = True
                    self.leftovers = self._group_members()
                    self._signal_group(signal.SIGKILL)
                    self.proc.wait(timeout=10)
            self.stop_seconds = time.monotonic() - start
        if self._log is not None:
            self._log.close()
            self._log = None
        self._http.close()


def chromium(
    url: str,
    profile_dir: Path,
    *,
    screenshot: Path | None = None,
    dump_dom: bool = False,
    window: tuple[int, int] = (1600, 1000),
    budget_ms: int = 10000,
    timeout_s: float = 60.0,
) -> str:
    """Headless Chromium once on ``url``: a PNG screenshot and/or the rendered DOM (returned)."""
    exe = find_chromium()
    if exe is None:
        raise AssertionError(f"chromium not found at {CHROMIUM}: {CHROMIUM_INSTALL_HINT}")
    cmd = [
        exe,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile_dir}",
        f"--window-size={window[0]},{window[1]}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    if dump_dom:
        cmd.append("--dump-dom")
    cmd.append(url)
    # Own process group, so a hung browser is killed with all its helper processes.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish {url} within {timeout_s:.0f} s") from None
    log = err.decode(errors="replace")[-3000:]
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode} on {url}:\n{log}")
    if screenshot is not None and not (screenshot.exists() and screenshot.stat().st_size > 0):
        raise AssertionError(f"chromium wrote no screenshot for {url}:\n{log}")
    return out.decode(errors="replace")


def render_until(
    url: str,
    profile_dir: Path,
    screenshot: Path,
    ready: Callable[[list[str]], bool],
    *,
    deadline_s: float = 40.0,
    window: tuple[int, int] = (1600, 1000),
) -> tuple[list[str], int]:
    """Screenshot + rendered DOM of ``url`` until ``ready(visible texts)``; return (texts, attempts).

    ``--virtual-time-budget`` runs the page on a virtual clock, and the UI loads its live data
    (latest events, partition counts) after timers: on a busy machine one render now and then ends
    while a node still says "Loading...". Each attempt is a fresh browser (new profile), with a larger
    budget; the screenshot always comes from the same attempt as the returned texts.
    """
    start, attempt, texts = time.monotonic(), 0, []
    while True:
        attempt += 1
        profile = profile_dir.with_name(f"{profile_dir.name}-{attempt}")
        html = chromium(
            url, profile, screenshot=screenshot, dump_dom=True, window=window, budget_ms=10000 + 5000 * (attempt - 1)
        )
        shutil.rmtree(profile, ignore_errors=True)
        texts = visible_texts(html)
        if ready(texts) or time.monotonic() - start > deadline_s:
            return texts, attempt


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def visible_texts(html: str) -> list[str]:
    """The text nodes of a rendered DOM (scripts and styles left out), in document order."""
    collector = _TextCollector()
    collector.feed(html)
    return collector.texts
