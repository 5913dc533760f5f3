"""``botyard config``: the effective settings with their environment variables, secrets masked."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import typer
from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from rich.console import Console

from botyard.cli.options import DatabaseUrl, DataDir, settings_for
from botyard.masking import PLACEHOLDER, Masker, mask_url
from botyard.settings import Rate, Settings

console = Console(stderr=True)


@dataclass(frozen=True)
class Entry:
    section: str
    variable: str
    value: str
    source: str  # "environment" or "default"


def env_names(model: type[BaseModel], name: str, field: FieldInfo) -> list[str]:
    """The environment variables a settings field is read from, preferred first."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return [(str(model.model_config.get("env_prefix", "")) + name).upper()]


def _render(value: Any, field: FieldInfo) -> str:
    if isinstance(value, SecretStr):
        return PLACEHOLDER if value.get_secret_value() else ""
    if value is None:
        return "off" if Rate in get_args(field.annotation) else ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return str(value)


def entries(settings: Settings) -> list[Entry]:
    """Every setting of every concern, in declaration order."""
    found: list[Entry] = []
    for section in type(settings).model_fields:
        concern = getattr(settings, section)
        if not isinstance(concern, BaseModel):
            continue
        for name, field in type(concern).model_fields.items():
            names = env_names(type(concern), name, field)
            chosen = next((n for n in names if n in os.environ), names[0])
            source = "environment" if name in concern.model_fields_set else "default"
            value = _render(getattr(concern, name), field)
            found.append(Entry(section, chosen, value, source))
    return found


def config(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Also run the orchestrator's start-up checks and connect to the store (and Redis);"
        " exit 2 on a problem.",
    ),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Print the effective configuration: every setting, its variable and value, secrets masked."""
    from botyard.orchestrator import preflight

    settings = settings_for(data_dir, database_url)
    # Belt and braces: whatever a field prints, no known secret gets through.
    masker = Masker.from_environment()
    masker.extend(Masker.from_settings(settings))
    listed = [
        Entry(e.section, e.variable, masker.mask(e.value), e.source) for e in entries(settings)
    ]
    if as_json:
        typer.echo(json.dumps([e.__dict__ for e in listed], indent=2))
    else:
        width = min(60, max(len(e.variable) + len(e.value) + 1 for e in listed))
        section = ""
        for e in listed:
            if e.section != section:
                if section:
                    typer.echo()
                typer.echo(f"# {e.section}")
                section = e.section
            typer.echo(f"{f'{e.variable}={e.value}'.ljust(width)}  # {e.source}")
    if check:
        found = preflight.problems(settings) + preflight.connection_problems(settings)
        for problem in found:
            console.print(
                masker.mask(problem), style="red", markup=False, highlight=False, soft_wrap=True
            )
        if found:
            raise typer.Exit(2)
        reached = "the store" + (" and Redis" if settings.redis.url else "")
        console.print(f"start-up checks passed ({reached} reached)", style="green")


def register(app: typer.Typer) -> None:
    app.command()(config)
