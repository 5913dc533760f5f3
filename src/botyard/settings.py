"""Typed settings, split by concern; the variable names the seeds document keep working."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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


class AuthSettings(BaseSettings):
    """JWT and the first admin (seed 002's variable names)."""

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

    @field_validator("automations", mode="before")
    @classmethod
    def _automations(cls, value: object) -> object:
        return _split_list(value)


class Settings(BaseSettings):
    """Every concern's settings, read once at the composition root and passed in."""

    model_config = SettingsConfigDict(extra="ignore")

    store: StoreSettings = Field(default_factory=StoreSettings)
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
