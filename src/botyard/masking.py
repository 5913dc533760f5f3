"""Secrets masked in logs: known secret values become ``***`` in every record a handler emits.

The values come from the settings (JWT secret, admin password, the password in DATABASE_URL,
every ``SecretStr``) and from the environment (variables named ``*_PASSWORD``, ``*_SECRET``,
``*_TOKEN``, ``*_KEY``, and the password of any ``*_URL``). Values shorter than four characters
are left alone, as are words like ``true`` or ``none``: masking them would garble every log line
and hide nothing worth hiding.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

__all__ = [
    "PLACEHOLDER",
    "Masker",
    "MaskingFilter",
    "install_log_masking",
    "mask_url",
    "url_password",
]

PLACEHOLDER = "***"
SECRET_SUFFIXES = ("_PASSWORD", "_SECRET", "_TOKEN", "_KEY")
MIN_LENGTH = 4
# Settings-like words are no secret, and masking them would garble every line.
NOT_SECRETS = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off"})
# The loggers whose handlers get the filter: the root's, and uvicorn's own (not propagated).
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def url_password(url: str) -> str | None:
    """The password in ``scheme://user:password@host/…``, if there is one."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return password or None


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    password = url_password(url)
    if not password:
        return url
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{PLACEHOLDER}@{host}"))


class Masker:
    """Replaces known secret values in text with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(*values)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Masker:
        """Secrets the environment names: ``*_PASSWORD/_SECRET/_TOKEN/_KEY``, URL passwords."""
        environ = os.environ if environ is None else environ
        masker = cls()
        for name, value in environ.items():
            upper = name.upper()
            if upper.endswith(SECRET_SUFFIXES):
                masker.add(value)
            elif upper.endswith("_URL") or upper == "DATABASE_URL":
                masker.add_url(value)
        return masker

    @classmethod
    def from_settings(cls, settings: BaseModel, *extra: str) -> Masker:
        """Every ``SecretStr`` of ``settings`` (nested too), URL passwords, and ``extra`` values."""
        masker = cls(extra)
        masker._add_model(settings)
        return masker

    def add(self, *values: str | None) -> None:
        fresh = {
            v for v in values if v and len(v) >= MIN_LENGTH and v.lower() not in NOT_SECRETS
        } - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            # Longest first, so that a secret containing another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def add_url(self, url: str | None) -> None:
        """Mask the password inside ``url`` (as written and percent-decoded)."""
        password = url_password(url) if url else None
        if password:
            self.add(password, unquote(password))

    def extend(self, other: Masker) -> None:
        self.add(*other._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, text: object) -> bool:
        """Whether ``text`` contains a secret."""
        pattern = self._pattern
        return bool(pattern and isinstance(text, str) and pattern.search(text))

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(PLACEHOLDER, text) if pattern else text

    def mask_json(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, strings) with every string masked."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.mask_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_json(v) for v in value]
        return value

    def _add_model(self, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                self.add(value.get_secret_value())
            elif isinstance(value, BaseModel):
                self._add_model(value)
            elif isinstance(value, str) and "://" in value:
                self.add_url(value)


class MaskingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, exception and stack text; drops nothing."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        masker = self.masker
        if not masker:
            return True
        if isinstance(record.msg, str):
            record.msg = masker.mask(record.msg)
        if record.args:
            # Argument by argument first: formatters that read the arguments (uvicorn's access
            # log does) keep working.
            record.args = self._mask_args(record.args)
        try:
            rendered = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as usual
            rendered = None
        if rendered is not None and rendered in masker:
            # An argument whose str() holds a secret: keep only the masked text.
            record.msg, record.args = masker.mask(rendered), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = masker.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.mask(record.stack_info)
        return True

    def _mask_args(self, args: Any) -> Any:
        masker = self.masker
        if isinstance(args, Mapping):
            return {k: masker.mask(v) if isinstance(v, str) else v for k, v in args.items()}
        if isinstance(args, tuple):
            return tuple(masker.mask(a) if isinstance(a, str) else a for a in args)
        return args


def install_log_masking(masker: Masker, loggers: Iterable[str] = LOGGERS) -> None:
    """Mask ``masker``'s secrets in what the handlers of ``loggers`` emit; repeatable.

    A handler that has a masking filter already gets the new secrets added to it.
    """
    added = MaskingFilter(masker)
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            present = next((f for f in handler.filters if isinstance(f, MaskingFilter)), None)
            if present is None:
                handler.addFilter(added)
            elif present is not added:
                present.masker.extend(masker)
