"""What text the API takes, checked in one place before any route (or the store) sees a request.

Both stores hold any Unicode text except two kinds of character, and they fail differently on
them: SQLite stores a lone UTF-16 surrogate (what JavaScript sends for a string cut inside an
emoji) but no answer that contains it can be encoded, and PostgreSQL refuses NUL (U+0000) in
text and in ``jsonb``. So neither may come in anywhere: JSON bodies (keys included), form
fields, query and path parameters, headers. JSON documents nest at most ``MAX_JSON_DEPTH``
levels (checked before they are parsed: a deep one never reaches ``json.loads``' recursion), and
their numbers are finite (``NaN`` and ``Infinity`` are not JSON, though Python reads them).

``InputRules`` is a pure ASGI middleware, so every route (the API's, the dashboard's, ones added
later) is covered without a validator per field; ``load_json`` applies the same rules to JSON that
arrives inside a form field (the dashboard's payload).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botyard.errors import InvalidInput
from botyard.orchestrator import errors
from botyard.unstorable import UNSTORABLE

MAX_JSON_DEPTH = 64

# A JSON string, escapes included. One that is not closed runs to the end of the text, so
# that a match never fails: a failed one would be tried again from each later quote (a body of
# quotes and backslashes would then cost time that grows with the square of its size).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
# What a document needs for one of its values to break the rules; without it (nearly always)
# its values are not looked at one by one.
_SUSPECT = re.compile(rf"\\u0000|\\u[dD][89a-fA-F]|{UNSTORABLE.pattern}|\d[eE]\+?\d{{3}}")
# Bodies larger than this are checked in a thread, not on the event loop.
_LARGE = 64 * 1024
_MESSAGES = {
    "nul_character": "text may not contain the NUL character (U+0000)",
    "lone_surrogate": "text may not contain an unpaired UTF-16 surrogate (U+D800-U+DFFF),"
    " such as half of an emoji",
}

# Headers that say how to read the body: two of one are two readings of it.
_SINGLE_HEADERS = ("content-type", "content-length", "transfer-encoding")

Loc = tuple[str | int, ...]


def problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (``nul_character``, ``lone_surrogate``), else None."""
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    return "nul_character" if found.group() == "\x00" else "lone_surrogate"


def _error(loc: Loc, kind: str, message: str | None = None) -> InvalidInput:
    # Never the offending text itself: an answer that carried it could not be encoded either.
    return InvalidInput([{"loc": list(loc), "msg": message or _MESSAGES[kind], "type": kind}])


def check_text(value: str, loc: Loc) -> None:
    kind = problem(value)
    if kind is not None:
        raise _error(loc, kind)


def _too_deep(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:  # cannot nest deeper than it has brackets
        return False
    depth = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(data: str | bytes, loc: Loc = ()) -> Any:
    """``json.loads`` under the rules: raises ``InvalidInput`` (with ``loc``) for a document
    that breaks them, ``ValueError`` for one that is not JSON."""
    text = (
        data if isinstance(data, str) else data.decode(json.detect_encoding(data), "surrogatepass")
    )
    if _too_deep(text, MAX_JSON_DEPTH):
        raise _error(
            loc, "json_too_deep", f"JSON may nest at most {MAX_JSON_DEPTH} arrays and objects deep"
        )
    document = json.loads(text, parse_constant=_reject_constant)
    if _SUSPECT.search(text) is None:
        return document
    for where, value in _leaves(document, loc):
        if isinstance(value, float) and not math.isfinite(value):
            raise _error(where, "json_number", "JSON numbers must be finite")
        if isinstance(value, str):
            check_text(value, where)
    return document


def _leaves(document: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every key and scalar with where it is; keys come before what is under them, so a
    ``loc`` never carries a key that breaks the rules."""
    stack: list[tuple[Loc, Any]] = [(loc, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                yield where, key
                stack.append(((*where, key), item))
        elif isinstance(value, list):
            stack.extend(((*where, i), item) for i, item in enumerate(value))
        else:
            yield where, value


def check_scope(scope: Scope) -> None:
    """The path, the query string and the headers."""
    check_text(scope.get("path", ""), ("path",))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        check_text(name, ("query",))
        check_text(value, ("query", name))
    for name, value in scope.get("headers", []):
        check_text(value.decode("latin-1"), ("header", name.decode("latin-1")))


def _body_kind(scope: Scope) -> str | None:
    # Read as Starlette reads them (the first of a repeated header), so that the body checked
    # here is the body the route parses; and a repeated one of these is refused outright, since
    # a proxy in front may have believed the other one.
    headers = Headers(scope=scope)
    for name in _SINGLE_HEADERS:
        if len(headers.getlist(name)) > 1:
            raise HTTPException(400, f"the {name} header may be sent only once")
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return None  # no body at all
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    # As FastAPI decides: no content type, or a JSON one, is read as JSON.
    if not content_type or content_type == "application/json" or content_type.endswith("+json"):
        return "json"
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return "form"
    return None  # bytes a route takes as they are, if any does


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body again, as one message; after it, the connection's own messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _check_form(scope: Scope, body: bytes, receive: Receive) -> None:
    request = Request(scope, _replay(body, receive))
    try:
        form = await request.form()
    except HTTPException:
        return  # not a form the route could read either: it says so itself
    try:
        for name, value in form.multi_items():
            check_text(name, ("body",))
            if isinstance(value, UploadFile):
                check_text(value.filename or "", ("body", name))
            else:
                check_text(value, ("body", name))
    finally:
        await form.close()


class InputRules:
    """Refuses a request that breaks the rules above with 422 (400 for a repeated
    Content-Type, Content-Length or Transfer-Encoding), before the app reads it.

    Added inside ``BodySizeLimit``, so the body it reads whole is bounded.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_scope(scope)
            kind = _body_kind(scope)
            if kind is None:
                await self.app(scope, receive, send)
                return
            body = await _read(receive)
            if kind == "json" and body:
                with contextlib.suppress(ValueError):  # not JSON: the route says so itself
                    if len(body) > _LARGE:
                        await anyio.to_thread.run_sync(load_json, body, ("body",))
                    else:
                        load_json(body, ("body",))
            elif kind == "form":
                await _check_form(scope, body, receive)
        except InvalidInput as exc:
            await errors.botyard_response(exc)(scope, receive, send)
            return
        except HTTPException as exc:  # a repeated header, or a body past its size limit
            await errors.http_response(exc)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)
