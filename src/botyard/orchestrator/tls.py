"""HTTPS for the orchestrator: a server context from SSL_CERT_PATH / SSL_KEY_PATH, TLS 1.2+."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from uvicorn.config import Config

from botyard.errors import ConfigurationError


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The server's SSL context; ``ConfigurationError`` names the file and what is wrong."""
    _readable("SSL_CERT_PATH", cert_path)
    _readable("SSL_KEY_PATH", key_path)
    try:  # the certificate on its own first, so that its faults are not blamed on the key
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert_path)
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"SSL_CERT_PATH={cert_path}: no PEM certificate could be read from it ({exc})"
        ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    asked: list[bool] = []

    def no_passphrase() -> str:
        # Without a callback OpenSSL would prompt on the terminal and a service would hang.
        asked.append(True)
        return ""

    try:
        context.load_cert_chain(cert_path, key_path, password=no_passphrase)
    except ssl.SSLError as exc:
        if asked:
            problem = "the key is protected by a passphrase; give Botyard an unencrypted key"
        elif "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"this key does not belong to the certificate in SSL_CERT_PATH={cert_path}"
        else:
            problem = f"no PEM private key could be read from it ({exc})"
        raise ConfigurationError(f"SSL_KEY_PATH={key_path}: {problem}") from None
    return context


def uvicorn_factory(context: ssl.SSLContext) -> Callable[[Config, object], ssl.SSLContext]:
    """uvicorn's ``ssl_context_factory`` serving ``context``, with the ALPN of its protocol."""

    def factory(config: Config, _default: object) -> ssl.SSLContext:
        alpn: list[str] | None = getattr(config.http_protocol_class, "alpn_protocols", None)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    return factory


def _readable(variable: str, path: Path) -> None:
    try:
        with path.open("rb") as file:
            file.read(1)
    except FileNotFoundError:
        problem = "file not found"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "not readable by this user (permission denied)"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    else:
        return
    raise ConfigurationError(f"{variable}={path}: {problem}")
