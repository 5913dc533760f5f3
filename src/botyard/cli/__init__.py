"""The ``botyard`` command."""

from __future__ import annotations

import logging

import typer

from botyard.cli import agent, config, demo, events, jobs, standby, system, users
from botyard.masking import Masker, install_log_masking
from botyard.version import __version__

app = typer.Typer(
    name="botyard",
    help="Botyard: a self-hosted orchestrator for Python automation (RPA) jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
system.register(app)
jobs.register(app)
demo.register(app)
users.register(app)
config.register(app)
standby.register(app)
agent.register(app)
events.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("alembic", "apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_masking(Masker.from_environment())


def main() -> None:
    app()
