"""The composition root: builds the store, the bus, the registry and the credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botyard.automations.registry import Registry, load_automations
from botyard.bus import Bus, open_bus
from botyard.bus.redis_lists import RedisJobLists
from botyard.credentials import Credentials
from botyard.errors import ConfigurationError
from botyard.events import EventPublisher, NullPublisher
from botyard.masking import Masker
from botyard.settings import Settings
from botyard.store.sql import SqlStore, open_store
from botyard.totp.ledger import Ledger, SqlLedger
from botyard.totp.redis_ledger import RedisLedger


@dataclass
class Runtime:
    settings: Settings
    store: SqlStore
    bus: Bus
    registry: Registry
    events: EventPublisher = field(default_factory=NullPublisher)
    redis: Any = None  # a redis-py client when Redis is configured, for reads
    lists: RedisJobLists | None = None  # Redis dispatch (BLMOVE), when on

    def close(self) -> None:
        self.events.close()
        if self.lists is not None:
            self.lists.close()
        self.bus.close()
        self.store.close()


def open_runtime(
    settings: Settings,
    *,
    modules: list[str] | None = None,
    scripts: list[str] | None = None,
    pool_size: int = 10,
    pre_ping: bool = True,
) -> Runtime:
    """Open everything a process needs; migrations are applied on the way."""
    settings.store.data_dir.mkdir(parents=True, exist_ok=True)
    registry = load_automations(
        modules if modules is not None else settings.server.automations,
        scripts if scripts is not None else settings.server.scripts,
    )
    store = open_store(settings.store.url, pool_size=pool_size, pre_ping=pre_ping)
    runtime = Runtime(
        settings=settings, store=store, bus=open_bus(settings.store.url), registry=registry
    )
    if settings.redis.url is not None:
        runtime.events = open_event_publisher(settings)
        runtime.redis = getattr(runtime.events, "client", None)
        if settings.redis.dispatch:
            runtime.lists = open_job_lists(settings)
    return runtime


def open_job_lists(settings: Settings) -> RedisJobLists:
    """Redis lists that carry runnable jobs to pull workers (``BOTYARD_REDIS_DISPATCH``)."""
    url = settings.redis.url
    if url is None:
        raise ConfigurationError("Redis dispatch needs REDIS_URL or VALKEY_HOST")
    _require_redis_py()
    from botyard.bus.redis_events import connect

    return RedisJobLists(connect(url), prefix=settings.redis.prefix)


def open_event_publisher(settings: Settings) -> EventPublisher:
    """Job status events and heartbeat keys in Redis/Valkey when one is configured."""
    url = settings.redis.url
    if url is None:
        return NullPublisher()
    _require_redis_py()
    from botyard.bus.redis_events import RedisEventPublisher, connect

    return RedisEventPublisher(
        connect(url), prefix=settings.redis.prefix, heartbeat_ttl=settings.redis.heartbeat_ttl
    )


def _require_redis_py() -> None:
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "REDIS_URL or VALKEY_HOST is set but redis-py is missing: pip install 'botyard[redis]'"
        ) from exc


def open_credentials(settings: Settings, masker: Masker | None = None) -> Credentials:
    """Mounted Secrets first, then ConfigMaps, then the environment."""
    return Credentials.from_settings(settings.credentials, masker)


def open_totp_ledger(settings: Settings, store: SqlStore) -> Ledger:
    """In Redis/Valkey when one is configured, else in the job store."""
    url = settings.redis.url
    if url is None:
        return SqlLedger(store.engine)
    _require_redis_py()
    import redis

    return RedisLedger(redis.Redis.from_url(url, decode_responses=True))
