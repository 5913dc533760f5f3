"""Wake-ups between processes on one machine: a datagram socket per subscriber in one folder.

Publishing is a non-blocking ``sendto`` to each socket in the folder, so a waiting worker wakes
in microseconds without any polling; sockets of dead subscribers are removed on the way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
import uuid
from pathlib import Path

from botyard.bus.base import Event

_MAX_SUN_PATH = 100  # sockaddr_un holds 108 bytes; keep a margin


def socket_dir_for(database_path: str) -> Path:
    """The folder of wake-up sockets of one SQLite file, short enough for ``sockaddr_un``.

    One folder per database: two stores side by side must not wake (or cancel) each other.
    """
    database = Path(database_path).resolve()
    beside = database.parent / f"{database.name}.wake"
    if len(str(beside)) + 40 < _MAX_SUN_PATH:
        return beside
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"botyard-wake-{digest}"


class LocalSubscription:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{uuid.uuid4().hex[:12]}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def wait(self, timeout: float) -> list[Event]:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        events: list[Event] = []
        if not ready:
            return events
        while True:
            try:
                raw = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return events
            except OSError:
                return events  # closed under us
            event = Event.decode(raw)
            if event is not None:
                events.append(event)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class LocalBus:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    def publish(self, event: Event) -> None:
        data = event.encode().encode()
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".sock"):
                continue
            target = str(self.folder / name)
            try:
                self._sender.sendto(data, target)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)  # its owner is gone
            except (BlockingIOError, OSError):
                pass  # its buffer is full of wake-ups already

    def subscribe(self) -> LocalSubscription:
        return LocalSubscription(self.folder)

    def close(self) -> None:
        self._sender.close()
