"""A system Chromium listening for DevTools (CDP) clients on a loopback port."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from botyard.browsers.local import find_chromium, switches
from botyard.errors import BrowserUnavailable
from botyard.processes import kill_tree


@dataclass
class CdpBrowser:
    process: subprocess.Popen[bytes]
    profile: Path
    endpoint: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        kill_tree(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


def launch_cdp(
    executable: str | None = None,
    *,
    headless: bool = True,
    extra: list[str] | None = None,
    timeout: float = 30.0,
) -> CdpBrowser:
    """Start Chromium in a process group of its own, with DevTools on a free loopback port."""
    profile = Path(tempfile.mkdtemp(prefix="botyard-browser-"))
    args = [
        find_chromium(executable),
        *switches(extra or []),
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
    ]
    if headless:
        args.append("--headless=new")
    process = subprocess.Popen(
        [*args, "about:blank"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            lines = port_file.read_text().split()
            if lines:
                return CdpBrowser(process, profile, f"http://127.0.0.1:{lines[0]}")
        time.sleep(0.01)
    browser = CdpBrowser(process, profile, "")
    browser.stop()
    raise BrowserUnavailable(f"Chromium did not open its DevTools port within {timeout:g}s")
