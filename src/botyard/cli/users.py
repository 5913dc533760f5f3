"""``botyard users``: manage who may use the API (directly in the store, like a migration).

Every change but ``add`` and ``enable`` ends the user's tokens: running orchestrators refuse
them within 5 seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from botyard.cli.options import DatabaseUrl, DataDir, settings_for
from botyard.errors import BotyardError, StoreUnavailable
from botyard.orchestrator.auth import Role
from botyard.orchestrator.users import UserAdmin
from botyard.store.sql import SqlStore, open_store

console = Console()
errors = Console(stderr=True)
users_app = typer.Typer(help="Manage API users and their roles.", no_args_is_help=True)
Username = typer.Argument(..., help="The user's name.")
_ACTOR = "cli"
_ENDED = "; every token of theirs ends within 5 s"


def _store(data_dir: Path | None, database_url: str | None) -> SqlStore:
    """The store, or one red line and exit 2 when it cannot be reached (as ``botyard server``
    says it: which URL, and what to check)."""
    from botyard.orchestrator import preflight

    settings = settings_for(data_dir, database_url)
    try:
        if problems := preflight.connection_problems(settings, redis=False):
            raise StoreUnavailable(problems[0])
        return open_store(settings.store.url)
    except BotyardError as exc:
        errors.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc


@contextmanager
def _admin(data_dir: Path | None, database_url: str | None) -> Iterator[UserAdmin]:
    """The store's users; a refused change is one red line and exit 1."""
    store = _store(data_dir, database_url)
    try:
        yield UserAdmin(store.users, store.audit)
    except BotyardError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    finally:
        store.close()


@users_app.command("add")
def add(
    username: str = Username,
    role: Role = typer.Option(Role.VIEWER, "--role", "-r", help="admin, operator or viewer."),
    password: str = typer.Option(
        ..., "--password", "-p", prompt=True, hide_input=True, confirmation_prompt=True
    ),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a user with a role."""
    with _admin(data_dir, database_url) as admin:
        admin.add(username, password, role, actor=_ACTOR)
    console.print(f"user {username} created with role {role.value}")


@users_app.command("passwd")
def passwd(
    username: str = Username,
    password: str = typer.Option(
        ..., "--password", "-p", prompt=True, hide_input=True, confirmation_prompt=True
    ),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Give a user a new password."""
    with _admin(data_dir, database_url) as admin:
        admin.set_password(username, password, actor=_ACTOR)
    console.print(f"new password for {username}{_ENDED}")


@users_app.command("role")
def role(
    username: str = Username,
    new_role: Role = typer.Argument(..., metavar="ROLE", help="admin, operator or viewer."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Give a user another role."""
    with _admin(data_dir, database_url) as admin:
        admin.set_role(username, new_role, actor=_ACTOR)
    console.print(f"{username} is {new_role.value} now{_ENDED}")


@users_app.command("disable")
def disable(
    username: str = Username,
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Stop a user logging in (and end their tokens)."""
    with _admin(data_dir, database_url) as admin:
        admin.disable(username, actor=_ACTOR)
    console.print(f"{username} disabled{_ENDED}")


@users_app.command("enable")
def enable(
    username: str = Username,
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Let a disabled user log in again."""
    with _admin(data_dir, database_url) as admin:
        admin.enable(username, actor=_ACTOR)
    console.print(f"{username} enabled")


@users_app.command("rm")
def rm(
    username: str = Username,
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Delete a user (and end their tokens)."""
    with _admin(data_dir, database_url) as admin:
        admin.delete(username, actor=_ACTOR)
    console.print(f"{username} deleted{_ENDED}")


@users_app.command("logout")
def logout(
    username: str = Username,
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """End every token of a user: browser sessions and API bearers."""
    with _admin(data_dir, database_url) as admin:
        admin.log_out(username, actor=_ACTOR)
    console.print(f"{username} logged out{_ENDED}")


@users_app.command("ls")
def ls(data_dir: Path | None = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """List users and their roles."""
    store = _store(data_dir, database_url)
    try:
        table = Table("username", "role", "disabled")
        for user in store.users.all():
            table.add_row(user.username, user.role, "yes" if user.disabled else "")
    finally:
        store.close()
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
