"""Typed access to configuration and credentials, whatever their source."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from botyard.credentials.sources import EnvironmentSource, FolderSource, Source
from botyard.errors import ConfigurationError
from botyard.masking import SECRET_SUFFIXES, Masker

if TYPE_CHECKING:
    from botyard.settings import CredentialSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class MissingSecret(ConfigurationError):
    """A required secret is not configured."""


@dataclass(frozen=True)
class ProviderCredentials:
    """A portal account: who logs in, with what, and the TOTP seed (if the portal asks)."""

    provider: str
    account: str | None
    username: str | None
    password: SecretStr | None
    totp_secret: SecretStr | None
    extra: dict[str, str] = field(default_factory=dict)  # <PREFIX>_URL, _TENANT, …
    # repr shows SecretStr('**********') for the secrets: printing an account leaks nothing.


def prefix_of(provider: str, account: str | None = None) -> str:
    """``mfn`` → ``MFN``; ``("mfn", "east")`` → ``MFN_EAST``."""
    parts = [provider] + ([account] if account else [])
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").upper() for p in parts)


class Credentials:
    """The first source that has a key wins: folders as listed, then the environment."""

    @classmethod
    def from_settings(
        cls, settings: CredentialSettings, masker: Masker | None = None
    ) -> Credentials:
        """Mounted Secrets first, then ConfigMaps, then the environment."""
        sources: list[Source] = [FolderSource(d, secret=True) for d in settings.secrets_dirs]
        sources += [FolderSource(d, secret=False) for d in settings.config_dirs]
        sources.append(EnvironmentSource())
        return cls(sources, masker)

    def __init__(self, sources: Sequence[Source], masker: Masker | None = None) -> None:
        self.sources = list(sources)
        self.masker = masker

    def _lookup(self, key: str) -> tuple[str, bool] | None:
        for source in self.sources:
            value = source.get(key)
            if value is not None:
                secret = source.secret or key.upper().endswith(SECRET_SUFFIXES)
                if secret and self.masker is not None:
                    self.masker.add(value)
                return value, secret
        return None

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self._lookup(key)
        return found[0] if found else default

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key)
        if value is None or not value.strip():
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{key} must be a whole number") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigurationError(f"{key} must be true or false")

    def get_secret(self, key: str, required: bool = False) -> SecretStr | None:
        """A secret, masked in every log from now on; ``MissingSecret`` when required."""
        found = self._lookup(key)
        if found is None or not found[0]:
            if required:
                raise MissingSecret(f"{key} is not set (environment or a mounted secret)")
            return None
        if self.masker is not None:
            self.masker.add(found[0])
        return SecretStr(found[0])

    def get_provider_credentials(
        self, provider: str, account: str | None = None
    ) -> ProviderCredentials:
        """``<PROVIDER>[_<ACCOUNT>]_EMAIL`` (or ``_USERNAME``), ``_PASSWORD``, ``_TOTP_SECRET``."""
        prefix = prefix_of(provider, account)
        username = self.get(f"{prefix}_EMAIL") or self.get(f"{prefix}_USERNAME")
        known = {f"{prefix}_{k}" for k in ("EMAIL", "USERNAME", "PASSWORD", "TOTP_SECRET")}
        extra: dict[str, Any] = {}
        for source in self.sources:
            if source.secret:
                continue  # secrets stay out of ``extra``: it is shown, they are not
            for key in sorted(source.names()):
                name = key[len(prefix) + 1 :].lower()
                if not key.startswith(prefix + "_") or key in known or name in extra:
                    continue
                if not key.upper().endswith(SECRET_SUFFIXES):
                    extra[name] = source.get(key)
        return ProviderCredentials(
            provider=provider,
            account=account,
            username=username,
            password=self.get_secret(f"{prefix}_PASSWORD"),
            totp_secret=self.get_secret(f"{prefix}_TOTP_SECRET"),
            extra={k: v for k, v in extra.items() if v is not None},
        )
