"""``botyard users``: manage who may use the API (directly in the store, like a migration)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from botyard.cli.options import DatabaseUrl, DataDir, settings_for
from botyard.orchestrator.auth import Role, hash_password
from botyard.store.accounts import UserExists
from botyard.store.sql import open_store

console = Console()
users_app = typer.Typer(help="Manage API users and their roles.", no_args_is_help=True)


@users_app.command("add")
def add(
    username: str = typer.Argument(..., help="The new user's name."),
    role: Role = typer.Option(Role.VIEWER, "--role", "-r", help="admin, operator or viewer."),
    password: str = typer.Option(
        ..., "--password", "-p", prompt=True, hide_input=True, confirmation_prompt=True
    ),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a user with a role."""
    if len(password) < 8:
        console.print("[red]use a password of at least 8 characters[/red]")
        raise typer.Exit(2)
    settings = settings_for(data_dir, database_url)
    store = open_store(settings.store.url)
    try:
        store.users.create(username, hash_password(password), role.value)
        store.audit.record(
            "user_created", actor="cli", target=f"user:{username}", details={"role": role.value}
        )
    except UserExists as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    console.print(f"user {username} created with role {role.value}")


@users_app.command("ls")
def ls(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """List users and their roles."""
    settings = settings_for(data_dir, database_url)
    store = open_store(settings.store.url)
    try:
        table = Table("username", "role", "disabled")
        for user in store.users.all():
            table.add_row(user.username, user.role, "yes" if user.disabled else "")
    finally:
        store.close()
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
