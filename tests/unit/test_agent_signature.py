"""Signed agent requests: what a captured signature opens (nothing else), and the proof."""

from __future__ import annotations

from botyard.agent_signature import SignatureCheck, proof_matches, prove, sign

TOKEN = "the-installation-worker-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signature_holds_for_its_own_request_once() -> None:
    clock = Clock()
    check = SignatureCheck(TOKEN, clock=clock)
    body = b'{"job_id": 7, "attempt": 1}'
    header = sign(TOKEN, "POST", "/execute", body, now=clock.now)
    assert TOKEN not in header
    assert not check.valid(header, "POST", "/execute", b'{"job_id": 8, "attempt": 1}')
    assert not check.valid(header, "POST", "/execute?x=1", body)
    assert not check.valid(header, "GET", "/execute", body)
    assert check.valid(header, "POST", "/execute", body)
    assert not check.valid(header, "POST", "/execute", body)  # the same request again


def test_old_foreign_and_malformed_signatures_are_refused() -> None:
    clock = Clock()
    check = SignatureCheck(TOKEN, clock=clock)
    stale = sign(TOKEN, "GET", "/status", b"", now=clock.now - 301)
    assert not check.valid(stale, "GET", "/status", b"")
    foreign = sign("another-installation", "GET", "/status", b"", now=clock.now)
    assert not check.valid(foreign, "GET", "/status", b"")
    for header in ("", "Bearer x", "Botyard-Signature", "Botyard-Signature t=x,n=y,s=z"):
        assert not check.valid(header, "GET", "/status", b"")
    clock.now += 200  # within MAX_SKEW of the agent's clock: fine
    assert check.valid(
        sign(TOKEN, "GET", "/status", b"", now=clock.now - 200), "GET", "/status", b""
    )


def test_only_a_holder_of_the_token_proves_a_challenge() -> None:
    proof = prove(TOKEN, "challenge-1", "agent-1")
    assert proof_matches(TOKEN, "challenge-1", "agent-1", proof)
    assert not proof_matches(TOKEN, "challenge-2", "agent-1", proof)
    assert not proof_matches(TOKEN, "challenge-1", "agent-2", proof)
    assert not proof_matches("another", "challenge-1", "agent-1", proof)
    assert not proof_matches(TOKEN, "challenge-1", "agent-1", None)
