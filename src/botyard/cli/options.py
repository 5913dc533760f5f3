"""Options shared by several commands, and the settings they produce."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from pydantic import ValidationError

from botyard.masking import Masker, install_log_masking
from botyard.settings import Settings

DataDir = typer.Option(
    None, "--data-dir", envvar="BOTYARD_DATA_DIR", help="Where SQLite, evidence and keys live."
)
DatabaseUrl = typer.Option(
    None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL; SQLite when unset."
)
Automations = typer.Option(
    None,
    "--automations",
    "-a",
    help="A module (dotted name or .py path) that registers automations; repeatable.",
)
Scripts = typer.Option(
    None,
    "--script",
    help="A standalone script automation, NAME=PATH; repeatable (default BOTYARD_SCRIPTS).",
)
ServerUrl = typer.Option(
    "http://127.0.0.1:8620", "--url", envvar="BOTYARD_URL", help="The orchestrator's URL."
)


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    """Settings from the environment, with the command-line options on top."""
    if data_dir is not None:
        os.environ["BOTYARD_DATA_DIR"] = str(data_dir)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    settings = Settings()
    install_log_masking(Masker.from_settings(settings))  # e.g. a password in --database-url
    return settings


def settings_problem(exc: ValidationError) -> str:
    """A refused setting in one line: the variable, then what is wrong with it."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or exc.title
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def modules_or_default(modules: list[str] | None, settings: Settings) -> list[str]:
    chosen = list(modules or settings.server.automations)
    return chosen or ["botyard.demo.automations"]
