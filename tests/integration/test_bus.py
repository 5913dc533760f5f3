"""The bus on every backend: local datagram sockets beside SQLite, LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botyard.bus import Bus, Event, Subscription, open_bus
from botyard.bus.base import CANCEL, JOBS
from botyard.bus.local import LocalBus, LocalSubscription, socket_dir_for

# A subscriber of its own: prints READY once subscribed, then the first event, then exits.
SUBSCRIBER = textwrap.dedent(
    """
    import sys, time
    from botyard.bus import open_bus

    bus = open_bus(sys.argv[1])
    sub = bus.subscribe()
    print("READY", getattr(sub, "path", ""), flush=True)
    deadline = time.monotonic() + float(sys.argv[2])
    try:
        while time.monotonic() < deadline:
            events = sub.wait(0.2)
            if events:
                print("EVENT", events[0].kind, events[0].value, flush=True)
                break
        else:
            print("NOTHING", flush=True)
    finally:
        sub.close()
        bus.close()
    """
)


def _start_subscriber(url: str, lifetime: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, url, str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first and first[0] == "READY", first
    return proc, first[1] if len(first) > 1 else ""


def _wait_for_event(sub: Subscription, timeout: float = 5.0) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = sub.wait(0.2)
        if events:
            return list(events)
    return []


def test_a_subscription_receives_what_is_published(bus: Bus) -> None:
    sub = bus.subscribe()
    try:
        bus.publish(Event(JOBS, "default"))
        bus.publish(Event(CANCEL, "42"))

        received = _wait_for_event(sub)
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            received += sub.wait(0.2)

        assert received == [Event(JOBS, "default"), Event(CANCEL, "42")]
        assert sub.wait(0.05) == []
    finally:
        sub.close()


def test_every_subscription_receives_the_event(bus: Bus) -> None:
    subs = [bus.subscribe() for _ in range(3)]
    try:
        bus.publish(Event(JOBS, "q"))

        assert [_wait_for_event(sub) for sub in subs] == [[Event(JOBS, "q")]] * 3
    finally:
        for sub in subs:
            sub.close()


def test_publish_without_subscribers_does_not_raise(bus: Bus) -> None:
    bus.publish(Event(JOBS, "nobody-listens"))


def test_wait_times_out_empty(bus: Bus) -> None:
    sub = bus.subscribe()
    try:
        started = time.monotonic()
        assert sub.wait(0.2) == []
        assert time.monotonic() - started >= 0.15
    finally:
        sub.close()


def test_a_subscriber_in_another_process_receives_the_event(store_url: str, bus: Bus) -> None:
    proc, _ = _start_subscriber(store_url, lifetime=10)
    try:
        bus.publish(Event(CANCEL, "7"))
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0
    assert out.split() == ["EVENT", CANCEL, "7"]


def test_another_process_can_publish_to_us(store_url: str, bus: Bus) -> None:
    sub = bus.subscribe()
    try:
        code = (
            "import sys\n"
            "from botyard.bus import Event, open_bus\n"
            "bus = open_bus(sys.argv[1])\n"
            "bus.publish(Event('jobs', 'from-child'))\n"
            "bus.close()\n"
        )
        subprocess.run([sys.executable, "-c", code, store_url], check=True, timeout=30)

        assert _wait_for_event(sub) == [Event(JOBS, "from-child")]
    finally:
        sub.close()


@pytest.fixture
def local_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite URL; its bus folder (maybe a fallback one in /tmp) is removed afterwards."""
    url = f"sqlite:///{tmp_path}/botyard.db"
    yield url
    with contextlib.suppress(OSError):
        socket_dir_for(f"{tmp_path}/botyard.db").rmdir()


def test_the_socket_of_a_dead_subscriber_is_removed(local_url: str) -> None:
    url = local_url
    bus = open_bus(url)
    assert isinstance(bus, LocalBus)
    alive = bus.subscribe()
    proc, dead_path = _start_subscriber(url, lifetime=30)
    try:
        assert dead_path and Path(dead_path).exists()
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up after itself
        proc.communicate(timeout=10)
        assert Path(dead_path).exists()

        bus.publish(Event(JOBS, "default"))

        assert not Path(dead_path).exists()
        assert _wait_for_event(alive) == [Event(JOBS, "default")]
        assert alive.path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        alive.close()
        bus.close()
    assert not alive.path.exists()
    assert sorted(os.listdir(bus.folder)) == []


def test_a_closed_subscription_removes_its_socket(local_url: str) -> None:
    bus = open_bus(local_url)
    try:
        sub = bus.subscribe()
        assert isinstance(sub, LocalSubscription)
        assert sub.path.exists()

        sub.close()

        assert not sub.path.exists()
        bus.publish(Event(JOBS, "default"))  # nobody left: still fine
    finally:
        bus.close()


def test_foreign_messages_are_ignored(local_url: str) -> None:
    bus = open_bus(local_url)
    assert isinstance(bus, LocalBus)
    sub = bus.subscribe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"not json", str(sub.path))
            sender.sendto(b'{"x": 1}', str(sub.path))
        bus.publish(Event(JOBS, "default"))

        assert _wait_for_event(sub) == [Event(JOBS, "default")]
    finally:
        sub.close()
        bus.close()


def test_two_sqlite_stores_in_one_folder_do_not_share_events() -> None:
    # A short folder: long ones fall back to a socket folder per database, which hides the bug.
    with tempfile.TemporaryDirectory(prefix="by-", dir="/tmp") as folder:
        bus_a = open_bus(f"sqlite:///{folder}/a.db")
        bus_b = open_bus(f"sqlite:///{folder}/b.db")
        sub_b = bus_b.subscribe()
        try:
            bus_a.publish(Event(CANCEL, "1"))  # meant for job 1 of a.db only

            assert sub_b.wait(0.3) == []
        finally:
            sub_b.close()
            bus_a.close()
            bus_b.close()
