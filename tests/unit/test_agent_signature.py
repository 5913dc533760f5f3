"""Signed agent requests: what a captured signature opens (nothing else), and the proof."""

from __future__ import annotations

import pytest

from botyard.agent_signature import SignatureCheck, audience, proof_matches, prove, sign

TOKEN = "the-installation-worker-token"
ME = "agent-1.internal:8621"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signature_holds_for_its_own_request_once() -> None:
    clock = Clock()
    check = SignatureCheck(TOKEN, ME, clock=clock)
    body = b'{"job_id": 7, "attempt": 1}'
    header = sign(TOKEN, "POST", "/execute", body, to=ME, now=clock.now)
    assert TOKEN not in header
    assert not check.valid(header, "POST", "/execute", b'{"job_id": 8, "attempt": 1}')
    assert not check.valid(header, "POST", "/execute?x=1", body)
    assert not check.valid(header, "GET", "/execute", body)
    assert check.valid(header, "POST", "/execute", body)
    assert not check.valid(header, "POST", "/execute", body)  # the same request again


def test_old_foreign_and_malformed_signatures_are_refused() -> None:
    clock = Clock()
    check = SignatureCheck(TOKEN, ME, clock=clock)
    stale = sign(TOKEN, "GET", "/status", b"", to=ME, now=clock.now - 301)
    assert not check.valid(stale, "GET", "/status", b"")
    foreign = sign("another-installation", "GET", "/status", b"", to=ME, now=clock.now)
    assert not check.valid(foreign, "GET", "/status", b"")
    for header in ("", "Bearer x", "Botyard-Signature", "Botyard-Signature t=x,n=y,s=z"):
        assert not check.valid(header, "GET", "/status", b"")
    clock.now += 200  # within MAX_SKEW of the agent's clock: fine
    assert check.valid(
        sign(TOKEN, "GET", "/status", b"", to=ME, now=clock.now - 200), "GET", "/status", b""
    )


def test_only_a_holder_of_the_token_proves_a_challenge() -> None:
    proof = prove(TOKEN, "challenge-1", "agent-1", ME)
    assert proof_matches(TOKEN, "challenge-1", "agent-1", ME, proof)
    assert not proof_matches(TOKEN, "challenge-2", "agent-1", ME, proof)
    assert not proof_matches(TOKEN, "challenge-1", "agent-2", ME, proof)
    assert not proof_matches("another", "challenge-1", "agent-1", ME, proof)
    assert not proof_matches(TOKEN, "challenge-1", "agent-1", ME, None)


def test_a_signature_addressed_to_another_agent_is_refused() -> None:
    """A rogue endpoint relays what it was sent to a real agent: the agent is not its audience."""
    clock = Clock()
    check = SignatureCheck(TOKEN, ME, clock=clock)
    relayed = sign(TOKEN, "GET", "/status", b"", to="rogue.example:9000", now=clock.now)
    assert not check.valid(relayed, "GET", "/status", b"")  # before: valid, whoever it named
    assert check.valid(
        sign(TOKEN, "GET", "/status", b"", to=ME, now=clock.now), "GET", "/status", b""
    )
    proof = prove(TOKEN, "challenge-1", "agent-1", ME)
    assert not proof_matches(TOKEN, "challenge-1", "agent-1", "rogue.example:9000", proof)


@pytest.mark.parametrize(
    "header",
    [
        "Botyard-Signature t=" + "9" * 5000 + ",n=" + "a" * 16 + ",s=x",  # before: ValueError
        "Botyard-Signature t=\u00b2\u00b3,n=" + "a" * 16 + ",s=x",  # digits int() refuses
        "Botyard-Signature t=1800000000,n=" + "\u00e9" * 16 + ",s=x",
        "Botyard-Signature t=-1,n=" + "a" * 16 + ",s=x",
        "Botyard-Signature ,,,=,t,n=,s",
    ],
)
def test_a_malformed_signature_is_refused_not_raised(header: str) -> None:
    assert not SignatureCheck(TOKEN, ME).valid(header, "GET", "/status", b"")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://Agent-1.internal:8621", "agent-1.internal:8621"),
        ("https://agent.example/", "agent.example:443"),
        ("http://10.0.0.5", "10.0.0.5:80"),
        ("http://[::1]:8621/status", "::1:8621"),
    ],
)
def test_the_audience_is_the_host_and_port(url: str, expected: str) -> None:
    assert audience(url) == expected
