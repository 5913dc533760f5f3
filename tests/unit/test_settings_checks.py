"""Settings the orchestrator refuses to start with, and the formats of the new settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from botyard.errors import ConfigurationError
from botyard.orchestrator import preflight
from botyard.orchestrator.app import create_app
from botyard.settings import (
    AuthSettings,
    CorsSettings,
    Rate,
    RateLimitSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    TlsSettings,
)

VARIABLES = (
    "JWT_SECRET",
    "JWT_SECRET_KEY",
    "JWT_ALGORITHM",
    "DEVELOPMENT_MODE",
    "SSL_CERT_PATH",
    "SSL_KEY_PATH",
    "CORS_ORIGINS",
    "CORS_ALLOW_CREDENTIALS",
    "TOKEN_RATE_LIMIT",
    "DATA_REQUEST_RATE_LIMIT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTYARD_DATA_DIR", str(tmp_path))


def _settings(**auth: object) -> Settings:
    return Settings(auth=AuthSettings(**auth))


def test_a_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        preflight.check(_settings(JWT_SECRET="x" * 31))
    message = str(refused.value)
    assert "JWT_SECRET is 31 bytes long; HS256 needs at least 32 bytes" in message
    assert "DEVELOPMENT_MODE" in message and "jwt-secret" in message
    preflight.check(_settings(JWT_SECRET="x" * 32))


def test_the_length_counts_bytes_and_follows_the_algorithm() -> None:
    with pytest.raises(ConfigurationError, match="31 bytes"):
        preflight.check(_settings(JWT_SECRET="é" * 15 + "x"))  # 16 characters, 31 bytes
    with pytest.raises(ConfigurationError, match="HS512 needs at least 64 bytes"):
        preflight.check(_settings(JWT_SECRET="x" * 40, JWT_ALGORITHM="HS512"))
    preflight.check(_settings(JWT_SECRET="x" * 48, JWT_ALGORITHM="HS384"))


def test_seed_001_name_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", "short")
    with pytest.raises(ConfigurationError, match="5 bytes"):
        preflight.check(Settings())


def test_development_mode_accepts_a_short_secret_but_not_an_empty_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    preflight.check(_settings(JWT_SECRET="dev", DEVELOPMENT_MODE=True))
    assert "accepted only because DEVELOPMENT_MODE is on" in caplog.text
    with pytest.raises(ConfigurationError, match="empty"):
        preflight.check(_settings(JWT_SECRET="", DEVELOPMENT_MODE=True))


def test_the_generated_secret_is_used_as_it_is(tmp_path: Path) -> None:
    settings = Settings()
    preflight.check(settings)  # JWT_SECRET unset: nothing to refuse
    secret = settings.auth.secret(tmp_path)
    assert len(secret.encode()) >= 64 and settings.auth.secret(tmp_path) == secret


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "none", "hs256", "PS512"])
def test_only_hmac_algorithms_are_accepted(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match="HS256, HS384, HS512"):
        preflight.check(_settings(JWT_ALGORITHM=algorithm, DEVELOPMENT_MODE=True))


def test_every_problem_is_named_at_once() -> None:
    settings = Settings(
        auth=AuthSettings(JWT_SECRET="short", JWT_ALGORITHM="RS256"),
        tls=TlsSettings(SSL_KEY_PATH="/etc/key.pem"),
        cors=CorsSettings(CORS_ORIGINS="*", CORS_ALLOW_CREDENTIALS=True),
    )
    found = preflight.problems(settings)
    assert len(found) == 3  # the secret's length is judged only for a supported algorithm
    assert "JWT_ALGORITHM='RS256' is not supported" in found[0]
    assert "SSL_KEY_PATH is set but SSL_CERT_PATH is not" in found[1]
    assert "CORS_ORIGINS='*' with CORS_ALLOW_CREDENTIALS=true" in found[2]


def test_the_app_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "too-short")
    with pytest.raises(ConfigurationError, match="JWT_SECRET is 9 bytes long"):
        create_app(Settings())
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    monkeypatch.setenv("SSL_CERT_PATH", "/etc/cert.pem")
    with pytest.raises(ConfigurationError, match="SSL_CERT_PATH is set but SSL_KEY_PATH is not"):
        create_app(Settings())


def test_cors_origins_as_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", '["https://ops.example.com/", "http://localhost:3000"]')
    assert CorsSettings().origins == ["https://ops.example.com", "http://localhost:3000"]
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example:8443")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    cors = CorsSettings()
    assert cors.origins == ["https://a.example", "https://b.example:8443"]
    assert cors.allow_credentials is True
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert CorsSettings().origins == []
    monkeypatch.setenv("CORS_ORIGINS", "ops.example.com")
    with pytest.raises(ConfigurationError, match=r"'ops\.example\.com' is not an origin"):
        preflight.check(Settings())


def test_tls_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not TlsSettings().enabled
    monkeypatch.setenv("SSL_CERT_PATH", "")  # empty is unset, not the current directory
    assert TlsSettings().cert_path is None
    monkeypatch.setenv("SSL_CERT_PATH", "/etc/botyard/cert.pem")
    monkeypatch.setenv("SSL_KEY_PATH", "/etc/botyard/key.pem")
    tls = TlsSettings()
    assert tls.enabled and tls.key_path == Path("/etc/botyard/key.pem")
    preflight.check(Settings(tls=tls))  # the files are read by `botyard server`


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/minute", Rate(10, 60)),
        ("10/min", Rate(10, 60)),
        ("100/hour", Rate(100, 3600)),
        ("5 / 30s", Rate(5, 30)),
        ("3/2h", Rate(3, 7200)),
        ("1/second", Rate(1, 1)),
        ("20/Day", Rate(20, 86400)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_rate_format(text: str, rate: Rate | None) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["10", "ten/minute", "10/fortnight", "0/minute", "10/0s", "-1/m"])
def test_bad_rates_are_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        Rate.parse(text)
    monkeypatch.setenv("TOKEN_RATE_LIMIT", text)
    with pytest.raises(ValidationError, match="TOKEN_RATE_LIMIT"):
        RateLimitSettings()


def test_rate_limit_defaults_and_display(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = RateLimitSettings()
    assert (limits.token, limits.data_request) == (Rate(10, 60), Rate(5, 3600))
    assert (str(limits.token), str(limits.data_request), str(Rate(5, 30))) == (
        "10/minute",
        "5/hour",
        "5/30s",
    )
    monkeypatch.setenv("DATA_REQUEST_RATE_LIMIT", "off")
    assert RateLimitSettings().data_request is None
    assert StoreSettings().is_sqlite  # untouched neighbours still read as before


def test_forwarded_headers_are_believed_only_from_the_proxies_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert ServerSettings().forwarded_allow_ips == []  # uvicorn's default would be 127.0.0.1
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.1.0.0/16,::1")
    assert ServerSettings().forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16", "::1"]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "proxy.internal")
    with pytest.raises(ValidationError, match=r"'proxy\.internal' is not an IP address"):
        ServerSettings()


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        ("10.0.0.1/8", r"'10\.0\.0\.1/8' is not an IP address, a CIDR \(with no host bits"),
        ("10.0.0.0/8,*", r"'\*' \(trust every proxy\) must be the only entry"),
        ('["*", "10.0.0.0/8"]', r"must be the only entry"),
    ],
)
def test_forwarded_allow_ips_that_uvicorn_would_ignore_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, refusal: str
) -> None:
    # Before: accepted, then uvicorn never trusted 10.0.0.1/8 nor took the list for "all".
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ValidationError, match=refusal):
        ServerSettings()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    assert ServerSettings().forwarded_allow_ips == ["*"]


@pytest.mark.parametrize("folder", ["odd?name", "odd#name", "100%name", "100%41"])
def test_the_sqlite_check_opens_paths_that_look_like_uri_syntax(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder: str
) -> None:
    # The check opened f"file:{path}?mode=ro": a ? or # cut the path short (and SQLite then
    # created the shorter file, its mode=ro lost), a % was read as an escape.
    database = tmp_path / folder / "botyard.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE kept (id INTEGER)")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///" + quote(str(database)))
    before = sorted(tmp_path.rglob("*"))
    assert preflight.connection_problems(Settings(), redis=False) == []
    assert sorted(tmp_path.rglob("*")) == before
