"""How the CLI finds a token: BOTYARD_TOKEN, a saved ``botyard login``, or the local admin."""

from __future__ import annotations

import json
import os
from pathlib import Path

from botyard.client import ApiError, Client


def _tokens_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "botyard" / "tokens.json"


def save_token(url: str, token: str) -> Path:
    path = _tokens_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = json.loads(path.read_text()) if path.exists() else {}
    tokens[url] = token
    path.touch(mode=0o600)
    path.write_text(json.dumps(tokens, indent=2))
    return path


def _saved_token(url: str) -> str | None:
    path = _tokens_file()
    if not path.exists():
        return None
    token = json.loads(path.read_text()).get(url)
    return str(token) if token else None


def connect(url: str, data_dir: Path | None = None) -> Client:
    """A client with a usable token, or without one when none can be found."""
    client = Client(url)
    token = os.environ.get("BOTYARD_TOKEN") or _saved_token(url)
    if token:
        client.token = token
        try:
            client.jobs(limit=1)
            return client
        except ApiError as exc:
            if exc.status != 401:
                return client
            client.token = None
    # On the machine that runs `botyard up`, the generated admin password is in the data dir.
    local = (data_dir or Path(os.environ.get("BOTYARD_DATA_DIR", ".botyard"))) / "admin-password"
    if local.exists():
        username = os.environ.get("ADMIN_USERNAME", "admin")
        client.login(username, local.read_text().strip())
    elif os.environ.get("ADMIN_PASSWORD"):
        client.login(os.environ.get("ADMIN_USERNAME", "admin"), os.environ["ADMIN_PASSWORD"])
    return client
