"""A headless Chromium that opens a page and reports what went wrong: console errors, uncaught exceptions and
resources that failed to load, through the DevTools protocol over a pipe (no extra Python package needed).

Chromium's ``--enable-logging=stderr`` prints console messages without their level and says nothing about a
missing image, so the test asks the browser itself: ``--remote-debugging-pipe`` reads JSON commands on file
descriptor 3 and writes replies and events on 4, each message ending in a NUL byte.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, MAX_HEIGHT = 1280, 16000  # screenshot size in CSS pixels (the height is the page's, up to MAX_HEIGHT)


@dataclass
class PageLoad:
    """What loading a page produced: ``errors`` (one line each) and the screenshot's pixel height."""

    errors: list[str] = field(default_factory=list)
    height: int = 0


class _DevTools:
    """A DevTools protocol client on the two pipes of a browser started with ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, timeout_s: float) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def child_fds() -> None:  # the browser reads commands on fd 3 and writes on fd 4 (kept by pass_fds)
            read, write = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--hide-scrollbars", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(to_browser)
        os.close(from_browser)
        self._deadline = time.monotonic() + timeout_s
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > self._deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result, keeping the events that arrive meanwhile."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        while True:
            message = self._read_message()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read_message())

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and failed loads (``Log`` entries of level error) as lines."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(f"exception: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
    return errors


def load_page(executable: str, url: str, screenshot: Path, *, timeout_s: float = 60.0) -> PageLoad:
    """Open ``url`` in a fresh headless browser, wait for its load event, save a full-page PNG screenshot."""
    tools = _DevTools(executable, timeout_s)
    try:
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            tools.call(f"{domain}.enable", session)
        tools.call("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=900, deviceScaleFactor=1,
                   mobile=False)
        tools.call("Page.navigate", session, url=url)
        tools.wait_for("Page.loadEventFired")
        size = tools.call("Page.getLayoutMetrics", session)["cssContentSize"]
        height = min(int(size["height"]), MAX_HEIGHT)
        shot = tools.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return PageLoad(_errors(tools.events), height)
    finally:
        tools.close()


@pytest.fixture(scope="session")
def open_in_browser() -> Callable[[str, Path], PageLoad]:
    """``open_in_browser(url, screenshot)`` -> PageLoad, in a headless Chromium; skips where none is installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return functools.partial(load_page, found)
    pytest.skip("no Chromium found (apt-get install -y chromium); the browser check of the report needs one")
