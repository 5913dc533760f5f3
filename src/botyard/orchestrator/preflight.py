"""Start-up checks: settings the orchestrator refuses to start with."""

from __future__ import annotations

import logging

from botyard.errors import ConfigurationError
from botyard.settings import Settings

log = logging.getLogger("botyard.api")

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def problems(settings: Settings) -> list[str]:
    """What is wrong with ``settings`` for running the orchestrator, in words for a person."""
    found: list[str] = []
    auth = settings.auth
    algorithm = auth.jwt_algorithm
    if algorithm not in HMAC_KEY_BYTES:
        found.append(
            f"JWT_ALGORITHM={algorithm!r} is not supported: Botyard signs tokens with a shared"
            f" secret, so use one of {', '.join(HMAC_KEY_BYTES)}"
        )
    if auth.jwt_secret is not None:  # the generated secret is long enough by construction
        size = len(auth.jwt_secret.get_secret_value().encode())
        needed = HMAC_KEY_BYTES.get(algorithm, 0)  # an unsupported algorithm is reported above
        if size == 0:
            found.append("JWT_SECRET is set but empty: unset it or set a random secret")
        elif size < needed and auth.development_mode:
            log.warning(
                "JWT_SECRET is %d bytes, under the %d bytes %s needs; accepted only because"
                " DEVELOPMENT_MODE is on",
                size,
                needed,
                algorithm,
            )
        elif size < needed:
            found.append(
                f"JWT_SECRET is {size} bytes long; {algorithm} needs at least {needed} bytes."
                " Set a longer random secret (python -c 'import secrets;"
                " print(secrets.token_urlsafe(48))'), or unset JWT_SECRET to use the one"
                f" generated in {settings.store.data_dir / 'jwt-secret'}"
                " (DEVELOPMENT_MODE=true accepts a short one for local tests)"
            )
    tls = settings.tls
    if (tls.cert_path is None) != (tls.key_path is None):
        given, missing = ("SSL_CERT_PATH", "SSL_KEY_PATH")
        if tls.cert_path is None:
            given, missing = missing, given
        found.append(f"{given} is set but {missing} is not: set both to serve HTTPS, or neither")
    cors = settings.cors
    if "*" in cors.origins and cors.allow_credentials:
        found.append(
            "CORS_ORIGINS='*' with CORS_ALLOW_CREDENTIALS=true would let any web site call the"
            " API with a user's credentials: name the allowed origins instead"
        )
    for origin in cors.origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            found.append(
                f"CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], e.g."
                " https://ops.example.com)"
            )
    return found


def check(settings: Settings) -> None:
    """Raise ``ConfigurationError`` naming every problem when the orchestrator must not start."""
    found = problems(settings)
    if found:
        raise ConfigurationError(
            "Botyard cannot start with this configuration:\n  - " + "\n  - ".join(found),
            problems=found,
        )
