"""Configuration and credentials from the environment and mounted Secret / ConfigMap folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from botyard.credentials import Credentials, EnvironmentSource, FolderSource, MissingSecret
from botyard.errors import ConfigurationError
from botyard.masking import Masker

ENV = {
    "METROFIBER_EMAIL": "ops@example.co.za",
    "METROFIBER_PASSWORD": "portal-password-123",
    "METROFIBER_PORTAL_URL": "https://portal.example",
    "RETRIES": "3",
    "HEADLESS": "yes",
    "BROKEN": "three",
}


def _mount(folder: Path, values: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        (folder / key).write_text(value + "\n")


def test_typed_getters() -> None:
    creds = Credentials([EnvironmentSource(ENV)])
    assert creds.get("RETRIES") == "3" and creds.get("NOPE", "x") == "x"
    assert creds.get_int("RETRIES") == 3 and creds.get_int("NOPE", 7) == 7
    assert creds.get_bool("HEADLESS") is True and creds.get_bool("NOPE") is False
    with pytest.raises(ConfigurationError, match="BROKEN must be a whole number"):
        creds.get_int("BROKEN")
    with pytest.raises(ConfigurationError, match="true or false"):
        creds.get_bool("BROKEN")
    with pytest.raises(MissingSecret, match="OSN_PASSWORD is not set"):
        creds.get_secret("OSN_PASSWORD", required=True)
    assert creds.get_secret("OSN_PASSWORD") is None


def test_seed_001_provider_credentials_and_masking() -> None:
    masker = Masker()
    creds = Credentials([EnvironmentSource(ENV)], masker)
    account = creds.get_provider_credentials("metrofiber")
    assert account.username == "ops@example.co.za"
    assert account.password is not None
    assert account.password.get_secret_value() == "portal-password-123"
    assert account.totp_secret is None
    assert account.extra == {"portal_url": "https://portal.example"}
    assert "portal-password-123" not in repr(account)
    assert masker.mask("logged in with portal-password-123") == "logged in with ***"


def test_a_mounted_secret_wins_and_a_change_is_picked_up(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    _mount(secrets, {"METROFIBER_PASSWORD": "from-the-secret-1", "..data": "ignored"})
    masker = Masker()
    creds = Credentials([FolderSource(secrets, secret=True), EnvironmentSource(ENV)], masker)
    account = creds.get_provider_credentials("metrofiber")
    assert account.password is not None
    assert account.password.get_secret_value() == "from-the-secret-1"
    assert account.username == "ops@example.co.za"  # the environment fills the rest
    assert creds.get("..data") is None

    (secrets / "METROFIBER_PASSWORD").write_text("from-the-secret-2\n")
    later = time.time() + 5
    os.utime(secrets / "METROFIBER_PASSWORD", (later, later))
    assert creds.get("METROFIBER_PASSWORD") == "from-the-secret-2"  # no restart
    assert masker.mask("from-the-secret-2") == "***"  # a value from a Secret is a secret


def test_a_configmap_folder_is_not_secret(tmp_path: Path) -> None:
    config = tmp_path / "config"
    _mount(config, {"METROFIBER_PORTAL_URL": "https://other.example"})
    masker = Masker()
    creds = Credentials([FolderSource(config, secret=False), EnvironmentSource(ENV)], masker)
    assert creds.get_provider_credentials("metrofiber").extra["portal_url"] == (
        "https://other.example"
    )
    assert masker.mask("https://other.example") == "https://other.example"
    missing = Credentials([FolderSource(tmp_path / "absent", secret=True)])
    assert missing.get("ANYTHING") is None  # a folder not mounted (yet) is empty
