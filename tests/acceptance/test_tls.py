"""`botyard server` over HTTPS: TLS 1.2+, and a clear refusal (exit code 2) of bad TLS files."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import AUTOMATIONS, System, _free_port
from tests.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "BOTYARD_DATA_DIR": str(data_dir),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "acceptance-password",
        "JWT_SECRET": "acceptance-tests-secret-of-at-least-32-bytes",
        "XDG_CONFIG_HOME": str(data_dir / "config"),
        **extra,
    }
    for name in ("DATABASE_URL", "SSL_CERT_PATH", "SSL_KEY_PATH", "DEVELOPMENT_MODE"):
        if name not in extra:
            env.pop(name, None)
    return env


@pytest.fixture
def https_server(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, int]]:
    env = _environment(tmp_path, SSL_CERT_PATH=str(pki.cert), SSL_KEY_PATH=str(pki.key))
    system = System(tmp_path, env)
    port = _free_port()
    proc = system.botyard("server", "--port", str(port), "--automations", AUTOMATIONS)
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    deadline = time.monotonic() + 60
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"https://127.0.0.1:{port}/health", verify=trusted, timeout=1)
                if answer.status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "processes.log").read_text()
                raise AssertionError(f"the HTTPS server did not start:\n{log}")
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        system.stop()


def _run_server(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``botyard server`` expected to stop at once."""
    return subprocess.run(
        [sys.executable, "-m", "botyard", "server", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _handshake(port: int, context: ssl.SSLContext) -> str | None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


def _client(pki: Pki, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that would speak TLS 1.0 up to ``maximum`` if the server let it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(pki.ca))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client's own OpenSSL must not refuse
    with warnings.catch_warnings():  # Python rightly deprecates what this client is for
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


def test_https_with_the_certificate_as_ca(https_server: tuple[str, int], pki: Pki) -> None:
    host, port = https_server
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    answer = httpx.get(f"https://{host}:{port}/health", verify=trusted, timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "healthy"
    token = httpx.post(
        f"https://{host}:{port}/token",
        data={"username": "admin", "password": "acceptance-password"},
        verify=trusted,
        timeout=10,
    )
    assert token.status_code == 200 and token.json()["token_type"] == "bearer"
    with pytest.raises(httpx.TransportError):  # plain HTTP on the same port gets no answer
        httpx.get(f"http://{host}:{port}/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{host}:{port}/health", timeout=5)  # not signed by a public CA


def test_tls_1_1_is_refused_and_1_2_accepted(https_server: tuple[str, int], pki: Pki) -> None:
    _host, port = https_server
    assert _handshake(port, _client(pki, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        # The same client gets through with TLS 1.2: only the version is refused (the server's
        # side of the refusal is in tests/unit/test_tls_context.py).
        with pytest.raises(ssl.SSLError):
            _handshake(port, _client(pki, old))
    modern = ssl.create_default_context(cafile=str(pki.ca))
    assert _handshake(port, modern) == "TLSv1.3"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"cert": "cert", "key": "missing"},
            "SSL_KEY_PATH={key}: file not found",
        ),
        (
            {"cert": "missing", "key": "key"},
            "SSL_CERT_PATH={cert}: file not found",
        ),
        (
            {"cert": "cert", "key": "other_key"},
            "SSL_KEY_PATH={key}: this key does not belong to the certificate in"
            " SSL_CERT_PATH={cert}",
        ),
        (
            {"cert": "key", "key": "key"},
            "SSL_CERT_PATH={cert}: no PEM certificate could be read from it",
        ),
        (
            {"cert": "cert", "key": "folder"},
            "SSL_KEY_PATH={key}: is a directory, not a file",
        ),
        (
            {"cert": "cert"},
            "SSL_CERT_PATH is set but SSL_KEY_PATH is not: set both to serve HTTPS, or neither",
        ),
    ],
    ids=["missing-key", "missing-cert", "mismatched-key", "not-a-cert", "key-is-folder", "half"],
)
def test_bad_tls_files_stop_the_server_with_exit_code_2(
    tmp_path: Path, pki: Pki, files: dict[str, str], message: str
) -> None:
    paths = {
        "cert": pki.cert,
        "key": pki.key,
        "other_key": pki.other_key,
        "missing": tmp_path / "missing.pem",
        "folder": tmp_path,
    }
    chosen = {role: str(paths[name]) for role, name in files.items()}
    env = _environment(
        tmp_path,
        **({"SSL_CERT_PATH": chosen["cert"]} if "cert" in chosen else {}),
        **({"SSL_KEY_PATH": chosen["key"]} if "key" in chosen else {}),
    )
    result = _run_server(env)
    assert result.returncode == 2, result.stderr
    assert message.format(**chosen) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_short_jwt_secret_stops_the_server(tmp_path: Path) -> None:
    env = _environment(tmp_path, JWT_SECRET="only-twenty-bytes-xx")
    result = _run_server(env)
    assert result.returncode == 2
    assert "JWT_SECRET is 20 bytes long; HS256 needs at least 32 bytes" in result.stderr
    assert "only-twenty-bytes-xx" not in result.stderr + result.stdout
    env["DEVELOPMENT_MODE"] = "true"
    env["JWT_ALGORITHM"] = "RS256"
    result = _run_server(env)
    assert result.returncode == 2 and "JWT_ALGORITHM='RS256' is not supported" in result.stderr
