"""Signed requests from the orchestrator to its agents: the worker token never leaves it.

The orchestrator does not send ``BOTYARD_WORKER_TOKEN`` to agents. It signs each request with a
key derived from the token (HMAC-SHA256 of the agent it is addressed to, the method, the path
and query, a timestamp, a nonce and the body's digest) and sends the signature. An agent holding
the same token checks it: addressed to itself (the host and port of its ``BOTYARD_AGENT_URL``,
the URL the orchestrator reaches it at), the timestamp within ``MAX_SKEW`` seconds of its clock,
each nonce once. Whatever else answers at a registered endpoint (a server an admin named in
``POST /workers/agents``, a process that took a port an agent left) sees signatures of requests
addressed to itself, which no agent takes: it cannot relay them to a real agent either.

Registering an endpoint goes one step further: the orchestrator sends a challenge with its
``GET /status``, and records the endpoint only when the answer carries ``proof`` — an HMAC of
the challenge, the agent's worker id and the address it was asked at, which only a holder of
the token can make.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator

import httpx

SCHEME = "Botyard-Signature"
CHALLENGE_HEADER = "X-Botyard-Challenge"
MAX_SKEW = 300.0  # seconds between the orchestrator's clock and the agent's
# What a well-formed header holds; anything else is refused before a number is parsed.
_STAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def audience(url: str | httpx.URL) -> str:
    """Whom a request is addressed to: the ``host:port`` of the agent's URL, in lower case."""
    parsed = httpx.URL(url)
    port = parsed.port or {"https": 443}.get(parsed.scheme, 80)
    return f"{parsed.host.lower()}:{port}"


def _key(worker_token: str) -> bytes:
    # A key of its own: a signature never doubles as an attempt credential or the token.
    return hmac.new(worker_token.encode(), b"botyard agent request v1", hashlib.sha256).digest()


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def sign(
    worker_token: str,
    method: str,
    target: str,
    body: bytes,
    *,
    to: str,
    now: float | None = None,
) -> str:
    """The ``Authorization`` value of a request to ``target`` (path and query) of the agent
    whose ``audience`` is ``to``."""
    stamp, nonce = str(int(time.time() if now is None else now)), secrets.token_urlsafe(16)
    digest = hashlib.sha256(body).hexdigest()
    mac = _mac(_key(worker_token), to, method.upper(), target, stamp, nonce, digest)
    return f"{SCHEME} t={stamp},n={nonce},s={mac}"


def prove(worker_token: str, challenge: str, worker_id: str, to: str) -> str:
    """An agent's answer to a registration challenge it was sent at ``to`` (its audience)."""
    return _mac(_key(worker_token), "agent proof", challenge, worker_id, to)


def proof_matches(
    worker_token: str, challenge: str, worker_id: str, to: str, proof: object
) -> bool:
    expected = prove(worker_token, challenge, worker_id, to)
    return isinstance(proof, str) and hmac.compare_digest(proof.encode(), expected.encode())


class SignedRequests(httpx.Auth):
    """httpx authentication that signs every request instead of sending the token."""

    requires_request_body = True

    def __init__(self, worker_token: str) -> None:
        self._token = worker_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers["Authorization"] = sign(
            self._token, request.method, target, request.content, to=audience(request.url)
        )
        yield request


class SignatureCheck:
    """The agent's side: is this a fresh request signed with our token, addressed to us (``to``,
    our ``audience``)?"""

    def __init__(
        self, worker_token: str, to: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = _key(worker_token)
        self.to = to
        self._clock = clock
        self._seen: dict[str, float] = {}  # nonce -> when it may be forgotten
        self._pruned = clock()
        self._lock = threading.Lock()

    def valid(self, authorization: str, method: str, target: str, body: bytes) -> bool:
        scheme, _, rest = authorization.partition(" ")
        if scheme != SCHEME:
            return False
        fields = dict(part.partition("=")[::2] for part in rest.split(","))
        stamp, nonce, given = fields.get("t", ""), fields.get("n", ""), fields.get("s", "")
        if not (_STAMP.fullmatch(stamp) and _NONCE.fullmatch(nonce)):
            return False
        now = self._clock()
        if abs(now - int(stamp)) > MAX_SKEW:
            return False
        digest = hashlib.sha256(body).hexdigest()
        expected = _mac(self._key, self.to, method.upper(), target, stamp, nonce, digest)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return False
        with self._lock:  # each signed request once: a copy sent again is refused
            if nonce in self._seen:
                return False
            if now >= self._pruned + 60:  # a nonce older than the window cannot come back
                self._seen = {n: until for n, until in self._seen.items() if until > now}
                self._pruned = now
            self._seen[nonce] = int(stamp) + MAX_SKEW
        return True
