"""Headless Chromium driven over the DevTools protocol: load a page, wait until a JavaScript condition holds,
read values from it, collect every console error and uncaught exception, and take a screenshot.

    with Browser(profile_dir) as browser:
        page = browser.open(url, until="document.readyState === 'complete'")
        page.value("document.title"); page.errors; page.screenshot(path)

``websockets`` is installed with dagster-webserver (uvicorn's standard extra), which the UI test needs anyway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import websockets

from seedance_pipeline_tests.dagster_dev import CHROMIUM, CHROMIUM_FLAGS, CHROMIUM_INSTALL_HINT, find_chromium

_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session
        self.errors: list[str] = []

    def value(self, expression: str) -> Any:
        answer = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} raised: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.value(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression!r} still false after {timeout_s:.0f} s; errors: {self.errors}")
            self.browser.pump(0.1)

    def screenshot(self, path: Path) -> None:
        shot = self.browser.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session
        )
        path.write_bytes(base64.b64decode(shot["data"]))


class Browser:
    def __init__(self, profile_dir: Path, window: tuple[int, int] = (1400, 1000)):
        exe = find_chromium()
        if exe is None:
            raise AssertionError(f"chromium not found at {CHROMIUM}: {CHROMIUM_INSTALL_HINT}")
        self._cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={window[0]},{window[1]}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--allow-file-access-from-files",
            "about:blank",
        ]
        self._loop = asyncio.new_event_loop()
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Browser:
        self.proc = subprocess.Popen(
            self._cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        url, seen, deadline = None, b"", time.monotonic() + 30
        while url is None:
            line = self.proc.stderr.readline()  # type: ignore[union-attr]
            seen += line
            match = _LISTENING.search(line)
            if match:
                url = match.group(1).decode()
            elif not line or time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError(
                    f"chromium did not open its DevTools port:\n{seen[-2000:].decode(errors='replace')}"
                )
        self._ws = self._loop.run_until_complete(websockets.connect(url, max_size=None))
        self._reader = self._loop.create_task(self._read())
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "_ws"):
            self._reader.cancel()
            self._loop.run_until_complete(self._ws.close())
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._loop.close()

    def open(self, url: str, until: str = "document.readyState === 'complete'", timeout_s: float = 30.0) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", {}, session)
        self.call("Page.navigate", {"url": url}, session)
        page.wait_for(until, timeout_s)
        return page

    def call(self, method: str, params: dict, session: str | None = None) -> dict:
        return self._loop.run_until_complete(self._call(method, params, session))

    def pump(self, seconds: float) -> None:
        self._loop.run_until_complete(asyncio.sleep(seconds))

    async def _call(self, method: str, params: dict, session: str | None) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        future = self._pending[self._next_id] = self._loop.create_future()
        await self._ws.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._pending:
                self._pending.pop(message["id"]).set_result(message)
                continue
            page = self._pages.get(message.get("sessionId", ""))
            if page is None:
                continue
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                page.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                page.errors.append(str(params["exceptionDetails"].get("exception", {}).get("description")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                page.errors.append(
                    f"{params['entry'].get('source')}: {params['entry'].get('text')} {params['entry'].get('url', '')}"
                )
