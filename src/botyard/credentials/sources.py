"""Where configuration values come from: the environment, and mounted folders of key files.

A Kubernetes Secret or ConfigMap mounted as a volume is a folder with one file per key; the
kubelet swaps the whole folder when the object changes. A folder is read again whenever its
modification time (or that of its ``..data`` link) moves, so a change is picked up without a
restart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Source(Protocol):
    """Values by key; ``None`` when this source does not have the key."""

    secret: bool

    def get(self, key: str) -> str | None: ...

    def names(self) -> set[str]: ...


class EnvironmentSource:
    secret = False  # names decide: *_PASSWORD, *_TOKEN, *_SECRET… are masked anyway

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ if environ is not None else os.environ

    def get(self, key: str) -> str | None:
        return self.environ.get(key)

    def names(self) -> set[str]:
        return set(self.environ)


class FolderSource:
    """One file per key (a mounted Secret or ConfigMap); re-read when the folder changes."""

    def __init__(self, folder: Path, *, secret: bool) -> None:
        self.folder = folder
        self.secret = secret
        self._stamp: tuple[float, float] | None = None
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        return self._current().get(key)

    def names(self) -> set[str]:
        return set(self._current())

    def _current(self) -> dict[str, str]:
        stamp = self._stamp_now()
        with self._lock:
            if stamp != self._stamp:
                self._values = self._read()
                self._stamp = stamp
            return self._values

    def _stamp_now(self) -> tuple[float, float] | None:
        try:
            folder = self.folder.stat().st_mtime
        except OSError:
            return None
        try:
            data = (self.folder / "..data").stat().st_mtime  # the kubelet's atomic swap
        except OSError:
            data = 0.0
        newest = max((p.stat().st_mtime for p in self._files()), default=0.0)
        return folder, max(data, newest)

    def _files(self) -> list[Path]:
        try:
            return [
                p
                for p in self.folder.iterdir()
                if not p.name.startswith(".") and p.is_file()  # skips ..data and ..2026_…
            ]
        except OSError:
            return []

    def _read(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for path in self._files():
            try:
                values[path.name] = path.read_text().rstrip("\n")
            except (OSError, UnicodeDecodeError):
                continue
        return values
