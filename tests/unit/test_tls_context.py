"""The orchestrator's SSL context: TLS 1.2 or newer, and errors that name the file and the fault."""

from __future__ import annotations

import os
import re
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.pki import Pki, make_pki

from botyard.errors import ConfigurationError
from botyard.orchestrator.tls import server_context


class ServerRefused(Exception):
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client(pki: Pki, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(pki.ca))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str | None:
    """A handshake through memory buffers; the server's own errors raise ``ServerRefused``."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, to_server, server_hostname="localhost")
    server = server_ctx.wrap_bio(to_server, to_client, server_side=True)
    done: set[int] = set()
    for _ in range(20):
        for n, side in enumerate((client, server)):
            if n in done:
                continue
            try:
                side.do_handshake()
                done.add(n)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side is server:
                    raise ServerRefused(str(exc)) from exc
                raise
        if done == {0, 1}:
            return client.version()
    raise AssertionError("the handshake did not finish")


def test_tls_1_2_and_1_3_only(pki: Pki) -> None:
    context = server_context(pki.cert, pki.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert _handshake(context, _client(pki, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert _handshake(context, ssl.create_default_context(cafile=str(pki.ca))) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        with pytest.raises(ServerRefused, match=r"UNSUPPORTED_PROTOCOL|VERSION_TOO_LOW"):
            _handshake(context, _client(pki, old))


def test_missing_and_mismatched_files(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    where = re.escape(str(missing))
    with pytest.raises(ConfigurationError, match=f"^SSL_CERT_PATH={where}: file not found$"):
        server_context(missing, pki.key)
    with pytest.raises(ConfigurationError, match=f"^SSL_KEY_PATH={where}: file not found$"):
        server_context(pki.cert, missing)
    with pytest.raises(ConfigurationError, match="does not belong to the certificate"):
        server_context(pki.cert, pki.other_key)
    with pytest.raises(ConfigurationError, match=r"SSL_CERT_PATH=.*no PEM certificate"):
        server_context(pki.key, pki.key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(ConfigurationError, match=r"SSL_KEY_PATH=.*no PEM private key"):
        server_context(pki.cert, garbage)


def test_a_key_with_a_passphrase_is_refused_without_prompting(pki: Pki, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(ConfigurationError, match="protected by a passphrase"):
        server_context(pki.cert, encrypted)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_key(pki: Pki, tmp_path: Path) -> None:
    locked = tmp_path / "locked.pem"
    locked.write_bytes(pki.key.read_bytes())
    locked.chmod(0)
    with pytest.raises(ConfigurationError, match="not readable by this user"):
        server_context(pki.cert, locked)
