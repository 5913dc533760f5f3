"""Secrets never reach a log line: the masker and the logging filter the CLI and the app install."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from botyard.masking import Masker, MaskingFilter, install_log_masking, mask_url, url_password
from botyard.settings import AuthSettings, Settings, StoreSettings


def test_masks_every_occurrence_longest_first() -> None:
    masker = Masker(["s3cret-value", "s3cret-value-and-more", "abc"])
    assert masker.mask("a s3cret-value-and-more b s3cret-value") == "a *** b ***"
    assert masker.mask("abc is too short to mask") == "abc is too short to mask"
    assert "x s3cret-value" in masker and "nothing here" not in masker
    assert Masker().mask("anything") == "anything" and not Masker()


def test_regex_characters_in_secrets_are_literal() -> None:
    masker = Masker(["a.b*c(d)[e]"])
    assert masker.mask("x a.b*c(d)[e] y aXbbc") == "x *** y aXbbc"


def test_environment_names_the_secrets() -> None:
    masker = Masker.from_environment(
        {
            "ADMIN_PASSWORD": "pw-of-the-admin",
            "JWT_SECRET": "jwt-secret-value",
            "BOTYARD_TOKEN": "token-value",
            "OTHER_API_KEY": "key-value",
            "DATABASE_URL": "postgresql://bot:db%40pass@db/botyard",
            "REDIS_URL": "redis://:redis-pass@cache:6379/0",
            "BOTYARD_HOST": "not-a-secret",
            "SSL_KEY_PATH": "/etc/ssl/key.pem",
        }
    )
    text = (
        "pw-of-the-admin jwt-secret-value token-value key-value db%40pass db@pass "
        "redis-pass not-a-secret /etc/ssl/key.pem"
    )
    assert masker.mask(text) == "*** *** *** *** *** *** *** not-a-secret /etc/ssl/key.pem"


def test_settings_secrets_and_the_database_password() -> None:
    settings = Settings(
        store=StoreSettings(DATABASE_URL="postgresql://bot:store-pass@db/botyard"),
        auth=AuthSettings(JWT_SECRET="j" * 40, ADMIN_PASSWORD=SecretStr("admin-pass")),
    )
    masker = Masker.from_settings(settings, "generated-jwt-secret")
    assert (
        masker.mask(f"store-pass admin-pass {'j' * 40} generated-jwt-secret admin")
        == "*** *** *** *** admin"
    )


def test_url_helpers() -> None:
    assert url_password("postgresql://u:p%40ss@h/d") == "p%40ss"
    assert url_password("sqlite:////tmp/x.db") is None
    assert mask_url("postgresql://u:p@ss@h:5432/d?x=1") == "postgresql://u:***@h:5432/d?x=1"
    assert mask_url("postgres://u@h/d") == "postgres://u@h/d"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with a handler of its own and the masking filter on it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("botyard.test.masking")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    install_log_masking(Masker(["hunter2-password"]), loggers=[log.name])
    try:
        yield log, out
    finally:
        log.removeHandler(handler)


def test_filter_masks_message_and_arguments(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.info("plain %s and %d", "hunter2-password", 7)
    log.info("f-string hunter2-password")
    log.info("%(user)s logs in with %(pw)s", {"user": "ann", "pw": "hunter2-password"})
    log.info("object %s", ValueError("bad hunter2-password"))
    assert out.getvalue().splitlines() == [
        "INFO plain *** and 7",
        "INFO f-string ***",
        "INFO ann logs in with ***",
        "INFO object bad ***",
    ]


def test_filter_masks_tracebacks(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    try:
        raise RuntimeError("could not connect with hunter2-password")
    except RuntimeError:
        log.exception("failed")
    assert "hunter2-password" not in out.getvalue()
    assert "RuntimeError: could not connect with ***" in out.getvalue()


def test_argument_tuples_keep_their_shape() -> None:
    # uvicorn's access formatter unpacks record.args: they must stay a 5-tuple.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/jobs?token=hunter2-password", "1.1", 200),
        None,
    )
    MaskingFilter(Masker(["hunter2-password"])).filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/jobs?token=***", "1.1", 200)


def test_installing_twice_adds_secrets_to_the_same_filter(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = logger
    install_log_masking(Masker(["second-secret"]), loggers=[log.name])
    (handler,) = [h for h in log.handlers if getattr(h, "stream", None) is out]
    assert sum(isinstance(f, MaskingFilter) for f in handler.filters) == 1
    log.warning("hunter2-password second-secret")
    assert out.getvalue() == "WARNING *** ***\n"
