"""Concurrency keys: how many jobs may use one portal account (or any shared thing) at once.

An automation names its key as a template over the payload, ``"mfn:{account}"``; the job's
key is rendered when it is submitted, with the limit that applies to it then. The store's
claim (``store/claims.py``) keeps the number of running jobs per key at or below that limit.
"""

from __future__ import annotations

import fnmatch
import json
import string
from dataclasses import dataclass
from typing import Any

from botyard.errors import PayloadInvalid

MAX_KEY_LENGTH = 255  # the column's width


def template_fields(template: str) -> list[str]:
    """The payload keys ``template`` names; ``ValueError`` unless each is a plain ``{name}``."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"concurrency key {template!r}: {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"concurrency key {template!r}: {{{name}}} is not a payload key")
        if spec or conversion:
            raise ValueError(f"concurrency key {template!r}: write {{{name}}}, no format")
        names.append(name)
    return names


def render_key(template: str, payload: dict[str, Any]) -> str:
    """The key of a job with this (validated) ``payload``; ``PayloadInvalid`` when it cannot be.

    ``null`` renders as an empty string, other non-strings as compact JSON.
    """
    missing = [name for name in template_fields(template) if name not in payload]
    if missing:
        raise PayloadInvalid(
            [
                {
                    "loc": [name],
                    "msg": f"the concurrency key {template!r} needs {name!r}, which is missing",
                    "type": "missing",
                }
                for name in missing
            ]
        )
    key = template.format_map({name: _text(payload[name]) for name in template_fields(template)})
    if len(key) > MAX_KEY_LENGTH:
        raise PayloadInvalid(
            [
                {
                    "loc": template_fields(template),
                    "msg": f"the concurrency key is longer than {MAX_KEY_LENGTH} characters",
                    "type": "string_too_long",
                }
            ]
        )
    return key


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class ConcurrencyLimits:
    """Limits per key that override the automations' own, written ``PATTERN=N,...``.

    Patterns are ``fnmatch`` patterns over the rendered key (``mfn:*=2,portal:ops=3``). A
    pattern equal to the key wins; otherwise the first pattern that matches, in written order.
    """

    rules: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, text: str) -> ConcurrencyLimits:
        """Read ``PATTERN=N,...`` (or a JSON object); ``ValueError`` when unreadable."""
        text = text.strip()
        if text.startswith("{"):
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"{text!r} is not an object of PATTERN: N")
            items = [(str(k), v) for k, v in data.items()]
        else:
            items = []
            for part in filter(None, (p.strip() for p in text.split(","))):
                pattern, sep, number = part.rpartition("=")
                if not sep:
                    raise ValueError(f"{part!r} is not PATTERN=N (e.g. mfn:*=2)")
                items.append((pattern.strip(), number.strip()))
        rules = []
        for pattern, number in items:
            try:
                limit = int(number)
            except (TypeError, ValueError):
                limit = 0
            if not pattern or limit < 1:
                raise ValueError(f"{pattern}={number}: a key pattern and a limit of 1 or more")
            rules.append((pattern, limit))
        return cls(tuple(rules))

    def limit_for(self, key: str, default: int) -> int:
        """The limit for ``key``: an override when one matches, else ``default``."""
        for pattern, limit in self.rules:
            if pattern == key:
                return limit
        for pattern, limit in self.rules:
            if fnmatch.fnmatchcase(key, pattern):
                return limit
        return default

    def __str__(self) -> str:
        return ",".join(f"{pattern}={limit}" for pattern, limit in self.rules)
