"""Typed settings, split by concern; the variable names the seeds document keep working."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from botyard.concurrency import ConcurrencyLimits


def _split_list(value: object) -> object:
    """Accept "a,b" or a JSON list (pydantic handles the latter) for list settings."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


class StoreSettings(BaseSettings):
    """Where jobs live: SQLite in the data directory unless DATABASE_URL names another store."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Field(default=Path(".botyard"), validation_alias="BOTYARD_DATA_DIR")

    @property
    def url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the URLs people paste from other tools and drive Postgres with psycopg 3.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'botyard.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class LeaseSettings(BaseSettings):
    """How long a worker holds a job without renewing it, and how often leases are swept."""

    model_config = SettingsConfigDict(env_prefix="BOTYARD_", extra="ignore")

    lease_ttl: float = Field(default=30.0, ge=1.0, le=3600.0)
    recover_interval: float = Field(default=5.0, gt=0.0)

    @property
    def renew_interval(self) -> float:
        return max(0.5, self.lease_ttl / 3)


class WorkerSettings(BaseSettings):
    """A pull worker's own knobs (its command-line flags override them)."""

    model_config = SettingsConfigDict(env_prefix="BOTYARD_WORKER_", extra="ignore")

    concurrency: int = Field(default=4, ge=1, le=512)
    queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    poll_interval: float = Field(default=5.0, gt=0.0)
    shutdown_grace: float = Field(default=30.0, ge=0.0)
    heartbeat_interval: float = Field(default=5.0, gt=0.0)
    prefetch: int | None = Field(default=None, ge=0)  # claimed ahead while jobs are short

    @field_validator("queues", mode="before")
    @classmethod
    def _queues(cls, value: object) -> object:
        return _split_list(value)


def _limits(value: object) -> object:
    return ConcurrencyLimits.parse(value) if isinstance(value, str) else value


class ConcurrencySettings(BaseSettings):
    """Running jobs per concurrency key, where an automation's own limit (1 unless it says
    ``concurrency_limit=``) is not the one wanted: ``PATTERN=N,...``, fnmatch patterns over the
    rendered key (``mfn:*=2,portal:ops=3``). Read when a job is submitted."""

    model_config = SettingsConfigDict(extra="ignore")

    limits: Annotated[ConcurrencyLimits, NoDecode, BeforeValidator(_limits)] = Field(
        default_factory=ConcurrencyLimits, validation_alias="BOTYARD_CONCURRENCY_LIMITS"
    )


class MaintenanceSettings(BaseSettings):
    """The orchestrator's maintenance jobs (their triggers) and who runs them."""

    model_config = SettingsConfigDict(env_prefix="BOTYARD_", extra="ignore")

    replica_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    poll_job_queue_seconds: float = Field(default=30.0, gt=0)
    collect_metrics_seconds: float = Field(default=300.0, gt=0)
    cleanup_old_evidence_cron: str = "0 2 * * *"
    # None: every BOTYARD_RECOVER_INTERVAL seconds
    recover_stale_jobs_seconds: float | None = Field(default=None, gt=0)
    poll_worker_job_status_seconds: float = Field(default=30.0, gt=0)
    leader_ttl: float = Field(default=15.0, ge=2.0)
    screenshot_retention_days: int = Field(
        default=30, ge=1, validation_alias="SCREENSHOT_RETENTION_DAYS"
    )
    history_retention_days: int = Field(default=30, ge=1)


class AuthSettings(BaseSettings):
    """JWT and the first admin."""

    model_config = SettingsConfigDict(extra="ignore")

    jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("JWT_SECRET", "JWT_SECRET_KEY")
    )
    jwt_algorithm: str = Field(default="HS256", validation_alias="JWT_ALGORITHM")
    jwt_expiration_minutes: int = Field(default=60, ge=1, validation_alias="JWT_EXPIRATION_MINUTES")
    admin_username: str = Field(default="admin", validation_alias="ADMIN_USERNAME")
    admin_password: SecretStr | None = Field(default=None, validation_alias="ADMIN_PASSWORD")
    development_mode: bool = Field(default=False, validation_alias="DEVELOPMENT_MODE")

    def secret(self, data_dir: Path) -> str:
        """JWT_SECRET, else a secret generated once and kept in the data directory."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = data_dir / "jwt-secret"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()


class ServerSettings(BaseSettings):
    """The orchestrator's HTTP server."""

    model_config = SettingsConfigDict(env_prefix="BOTYARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8620, ge=1, le=65535)
    automations: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 1024 * 1024
    api_threads: int = Field(default=8, ge=1, le=256)  # threads serving the sync endpoints
    # Standalone script automations, NAME=PATH, as the workers run them (``--script``).
    scripts: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        default_factory=list
    )
    # Readiness fails when the data directory (the SQLite file, evidence) has less room left.
    min_free_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs, CIDRs, or "*").
    # Empty: none, so a client cannot pick the address its rate limits count against.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="FORWARDED_ALLOW_IPS"
    )

    @field_validator("automations", "forwarded_allow_ips", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        # uvicorn takes an entry it cannot read as a network (10.0.0.1/8, host bits set) for a
        # literal name that no peer address equals, and "*" only when it is the whole list: what
        # it would silently ignore is refused here instead.
        if "*" in value and len(value) > 1:
            raise ValueError("'*' (trust every proxy) must be the only entry")
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not an IP address, a CIDR (with no host bits set) or *"
                    ) from None
        return value


_PERIODS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` requests per ``seconds``, written ``COUNT/PERIOD``.

    PERIOD is ``second``, ``minute``, ``hour`` or ``day`` (or ``s``, ``m``, ``h``, ``d``),
    optionally with a number in front: ``10/minute``, ``100/hour``, ``5/30s``.
    """

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """The rate in ``text``; ``None`` for ``off``. Raises ``ValueError`` when unreadable."""
        if text.strip().lower() in ("off", "none", "unlimited"):
            return None
        match = _RATE.match(text.lower())
        if not match or match[3] not in _PERIODS:
            raise ValueError(
                f"{text!r} is not a rate: use COUNT/PERIOD, e.g. 10/minute, 100/hour, 5/30s or off"
            )
        count, seconds = int(match[1]), float(match[2] or 1) * _PERIODS[match[3]]
        if count < 1 or seconds <= 0:
            raise ValueError(f"{text!r} is not a rate: COUNT and PERIOD must be positive")
        return cls(count, seconds)

    def __str__(self) -> str:
        names: dict[float, str] = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
        return f"{self.count}/{names.get(self.seconds, f'{self.seconds:g}s')}"


def _rate(value: object) -> object:
    return Rate.parse(value) if isinstance(value, str) else value


RateSetting = Annotated[Rate | None, BeforeValidator(_rate)]


class RateLimitSettings(BaseSettings):
    """Limits on the endpoints anyone may call, as ``COUNT/PERIOD`` or ``off``.

    Logins count failures: per client address and account (``token``), per client address over
    all accounts (``login_address``) and per account from every address (``login_account``).
    Data-subject requests count requests per client address.
    """

    model_config = SettingsConfigDict(extra="ignore")

    token: RateSetting = Field(default=Rate(10, 60), validation_alias="TOKEN_RATE_LIMIT")
    login_account: RateSetting = Field(
        default=Rate(50, 3600), validation_alias="LOGIN_ACCOUNT_RATE_LIMIT"
    )
    login_address: RateSetting = Field(
        default=Rate(100, 600), validation_alias="LOGIN_ADDRESS_RATE_LIMIT"
    )
    data_request: RateSetting = Field(
        default=Rate(5, 3600), validation_alias="DATA_REQUEST_RATE_LIMIT"
    )


class CorsSettings(BaseSettings):
    """Browser origins allowed to call the API: none unless CORS_ORIGINS names them."""

    model_config = SettingsConfigDict(extra="ignore")

    origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CORS_ORIGINS"
    )
    allow_credentials: bool = Field(default=False, validation_alias="CORS_ALLOW_CREDENTIALS")

    @field_validator("origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        value = _split_list(value)
        if isinstance(value, list):
            # A browser sends "https://app.example", without the slash people often paste.
            return [v.rstrip("/") if isinstance(v, str) else v for v in value]
        return value


class TlsSettings(BaseSettings):
    """HTTPS for ``botyard server``: both files, or neither."""

    model_config = SettingsConfigDict(extra="ignore")

    cert_path: Path | None = Field(default=None, validation_alias="SSL_CERT_PATH")
    key_path: Path | None = Field(default=None, validation_alias="SSL_KEY_PATH")

    @field_validator("cert_path", "key_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def enabled(self) -> bool:
        return self.cert_path is not None or self.key_path is not None


class PrivacySettings(BaseSettings):
    """What the privacy notice (POPIA) names."""

    model_config = SettingsConfigDict(extra="ignore")

    data_protection_contact: str | None = Field(
        default=None, validation_alias="DATA_PROTECTION_CONTACT"
    )
    organisation: str | None = Field(default=None, validation_alias="DATA_PROTECTION_ORGANISATION")


class RedisSettings(BaseSettings):
    """Redis or Valkey (optional): ``REDIS_URL``, or ``VALKEY_HOST``, ``_PORT``,
    ``_PASSWORD``."""

    model_config = SettingsConfigDict(extra="ignore")

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    valkey_host: str | None = Field(default=None, validation_alias="VALKEY_HOST")
    valkey_port: int = Field(default=6379, ge=1, le=65535, validation_alias="VALKEY_PORT")
    valkey_password: SecretStr | None = Field(default=None, validation_alias="VALKEY_PASSWORD")
    # A worker's heartbeat key lives 30 s unless renewed.
    heartbeat_ttl: int = Field(
        default=30, ge=1, le=3600, validation_alias="BOTYARD_REDIS_HEARTBEAT_TTL"
    )
    # Jobs reach pull workers through Redis lists (BLMOVE); false keeps Redis for events only.
    dispatch: bool = Field(default=True, validation_alias="BOTYARD_REDIS_DISPATCH")
    # How often the leader re-announces runnable jobs Redis lost (after a restart, a FLUSHALL).
    reconcile_seconds: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="BOTYARD_REDIS_RECONCILE_SECONDS"
    )
    # Keys and channels start with it: several Botyards (or test runs) can share one Redis.
    prefix: str = Field(
        default="botyard",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        validation_alias="BOTYARD_REDIS_PREFIX",
    )

    @property
    def url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if not self.valkey_host:
            return None
        password = self.valkey_password.get_secret_value() if self.valkey_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.valkey_host}:{self.valkey_port}/0"


class CredentialSettings(BaseSettings):
    """Where credentials and configuration come from, besides the environment; TOTP policy."""

    model_config = SettingsConfigDict(extra="ignore")

    # Folders with one file per key: mounted Kubernetes Secrets, then ConfigMaps.
    secrets_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="BOTYARD_SECRETS_DIRS"
    )
    config_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="BOTYARD_CONFIG_DIRS"
    )
    totp_min_validity: float = Field(default=5.0, ge=0, le=25, validation_alias="TOTP_MIN_VALIDITY")

    @field_validator("secrets_dirs", "config_dirs", mode="before")
    @classmethod
    def _folders(cls, value: object) -> object:
        return _split_list(value)


class AgentSettings(BaseSettings):
    """Agent workers (the HTTP worker service) and the orchestrator's side of pushing to them."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="127.0.0.1", validation_alias="BOTYARD_AGENT_HOST")
    port: int = Field(default=8621, ge=1, le=65535, validation_alias="BOTYARD_AGENT_PORT")
    # The URL the orchestrator uses for this agent (default http://<hostname>:<port>).
    url: str | None = Field(default=None, validation_alias="BOTYARD_AGENT_URL")
    token: SecretStr | None = Field(default=None, validation_alias="BOTYARD_WORKER_TOKEN")
    authorized_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="AUTHORIZED_WORKER_IPS"
    )
    # The orchestrator: agents to find at start-up and at every poll_worker_job_status.
    endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="WORKER_ENDPOINTS"
    )
    request_timeout: float = Field(default=5.0, gt=0, validation_alias="BOTYARD_AGENT_TIMEOUT")

    @field_validator("authorized_ips", "endpoints", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("token", "url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class StandbySettings(BaseSettings):
    """The one-shot standby task server."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = Field(default="127.0.0.1", validation_alias="TASK_SERVER_HOST")
    port: int = Field(default=8080, ge=1, le=65535, validation_alias="TASK_SERVER_PORT")
    auth_token: SecretStr | None = Field(default=None, validation_alias="TASK_AUTH_TOKEN")
    timeout: float = Field(default=3600.0, gt=0, validation_alias="WORKER_TIMEOUT")
    allow_private_urls: bool = Field(default=False, validation_alias="STANDBY_ALLOW_PRIVATE_URLS")
    ca_bundle: Path | None = Field(default=None, validation_alias="STANDBY_CA_BUNDLE")
    download_timeout: float = Field(default=30.0, gt=0, validation_alias="STANDBY_DOWNLOAD_TIMEOUT")
    max_script_bytes: int = 5 * 1024 * 1024
    max_payload_bytes: int = 1024 * 1024
    # Where each task and its outcome are recorded as a job (optional; with the worker token of
    # AgentSettings), and as whom.
    orchestrator_url: str | None = Field(default=None, validation_alias="BOTYARD_URL")
    worker_id: str = Field(
        default_factory=lambda: f"standby-{socket.gethostname()}",
        validation_alias="BOTYARD_WORKER_ID",
    )

    @field_validator("auth_token", "ca_bundle", "orchestrator_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class BrowserSettings(BaseSettings):
    """Where a job's browser comes from: local Chromium, a remote endpoint or a Kubernetes pod."""

    model_config = SettingsConfigDict(extra="ignore")

    provider: Literal["local", "remote", "kubernetes"] = Field(
        default="local", validation_alias="BROWSER_PROVIDER"
    )
    # The system Chromium (found on PATH as chromium, chromium-browser or google-chrome).
    executable: str | None = Field(default=None, validation_alias="BROWSER_EXECUTABLE")
    chromedriver: str | None = Field(default=None, validation_alias="BROWSER_CHROMEDRIVER")
    # Extra Chromium switches (comma-separated or a JSON list), e.g. --no-sandbox in a container.
    args: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="BROWSER_ARGS"
    )
    headless: bool = Field(default=True, validation_alias="BROWSER_HEADLESS")
    # Keep a launched browser and a fresh page ready in every slot between jobs.
    warm: bool = Field(default=True, validation_alias="BROWSER_WARM")
    idle_ttl: float = Field(default=600.0, gt=0, validation_alias="BROWSER_IDLE_TTL")
    trace_on_failure: bool = Field(default=False, validation_alias="BROWSER_TRACE_ON_FAILURE")
    # POST /browsers: off unless enabled, since the browser it starts answers anyone who can
    # reach its port (a DevTools port on this host, a Playwright server in a pod).
    api_sessions: bool = Field(default=False, validation_alias="BROWSER_API_SESSIONS")
    # remote: a Playwright server (ws://...), a Chrome DevTools endpoint (http://...:9222).
    remote_url: str | None = Field(default=None, validation_alias="BROWSER_REMOTE_URL")
    # remote: a Selenium Grid (http://grid:4444/wd/hub) for browser="selenium" jobs.
    selenium_url: str | None = Field(default=None, validation_alias="SELENIUM_REMOTE_URL")
    # kubernetes: one pod (and service) per session, from a template.
    k8s_namespace: str = Field(default="default", validation_alias="BROWSER_K8S_NAMESPACE")
    # Default: Playwright's image at the installed client's version.
    k8s_image: str | None = Field(default=None, validation_alias="BROWSER_K8S_IMAGE")
    k8s_port: int = Field(default=3000, ge=1, le=65535, validation_alias="BROWSER_K8S_PORT")
    # A YAML pod manifest to start from (its first container runs the browser server).
    k8s_pod_template: Path | None = Field(default=None, validation_alias="BROWSER_K8S_POD_TEMPLATE")
    k8s_deadline: int = Field(default=3600, ge=60, validation_alias="BROWSER_K8S_DEADLINE")
    k8s_ready_timeout: float = Field(
        default=120.0, gt=0, validation_alias="BROWSER_K8S_READY_TIMEOUT"
    )
    k8s_cpu_limit: str = Field(default="1", validation_alias="BROWSER_K8S_CPU_LIMIT")
    k8s_memory_limit: str = Field(default="2Gi", validation_alias="BROWSER_K8S_MEMORY_LIMIT")

    @field_validator("args", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator(
        "executable",
        "chromedriver",
        "remote_url",
        "selenium_url",
        "k8s_image",
        "k8s_pod_template",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class Settings(BaseSettings):
    """Every concern's settings, read once at the composition root and passed in."""

    model_config = SettingsConfigDict(extra="ignore")

    store: StoreSettings = Field(default_factory=StoreSettings)
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    standby: StandbySettings = Field(default_factory=StandbySettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
