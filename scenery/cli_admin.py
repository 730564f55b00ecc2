"""``scenery admin``: accounts for the /admin pages."""

from __future__ import annotations

import sys
from typing import Any

import click

from scenery.cli_support import context, domain_errors


@click.group()
def admin() -> None:
    """Manage admin accounts."""


@admin.command("create")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_obj
@domain_errors
def create(obj: dict[str, Any], username: str, password_stdin: bool) -> None:
    """Create an admin, or set a new password for an existing one (ending its sessions)."""
    from scenery.accounts import create_user
    from scenery.db import transaction

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    ctx = context(obj)
    with transaction(ctx.sessions) as session:
        change = create_user(session, username, password)
    name = change.user.username
    click.echo(f"admin {name} can now log in at /admin/login")
    if not change.created:
        click.echo(f"new password set: {name} is logged out of every browser")


COMMANDS = [admin]
