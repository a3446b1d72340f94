"""Console script `autodealgenie`: migrate, seed, create-admin, check-config.

Every command prints one JSON object with a "changed" key (Ansible: changed_when) and exits non-zero
with a message on stderr when it fails.
"""

from __future__ import annotations

import json
import os
import sys

import click
import psycopg2

from .config import Config, ConfigError


def _config() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise click.ClickException("invalid configuration: " + "; ".join(exc.problems)) from None


def _emit(result: dict) -> None:
    click.echo(json.dumps(result, sort_keys=True))


@click.group()
def main():
    """AutoDealGenie backend administration (reads the same environment as the service)."""


@main.command()
def migrate():
    """Apply pending PostgreSQL migrations (idempotent; safe to run from several hosts at once)."""
    from .migrate import MigrationError
    from .migrate import migrate as run_migrations

    try:
        _emit(run_migrations(_config()))
    except (MigrationError, psycopg2.Error) as exc:
        raise click.ClickException(str(exc).strip()) from None


@main.command()
@click.option(
    "--vehicles",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Number of sample vehicles.",
)
@click.option(
    "--seed",
    "seed_value",
    default=42,
    show_default=True,
    type=int,
    help="Random seed (same seed, same data).",
)
def seed(vehicles: int, seed_value: int):
    """Insert the deterministic sample vehicle inventory (idempotent)."""
    from .seed import seed_vehicles

    try:
        _emit(seed_vehicles(_config(), vehicles, seed_value))
    except psycopg2.Error as exc:
        raise click.ClickException(str(exc).strip()) from None


@main.command("create-admin")
@click.option("--email", required=True)
@click.option("--username", required=True)
@click.option("--full-name", default=None)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of ADMIN_PASSWORD."
)
def create_admin(email: str, username: str, full_name: str | None, password_stdin: bool):
    """Create a superuser, or promote the user with this email and update its password (idempotent)."""
    from .admin import ensure_admin

    password = sys.stdin.readline().rstrip("\n") if password_stdin else os.environ.get("ADMIN_PASSWORD", "")
    try:
        _emit(ensure_admin(_config(), email=email, username=username, full_name=full_name, password=password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg2.Error as exc:
        raise click.ClickException(str(exc).strip()) from None


@main.command("check-config")
def check_config():
    """Validate the environment; prints the non-secret settings."""
    config = _config()
    secret = ("password", "secret", "key", "mongodb_url")  # the URL may carry credentials
    _emit(
        {
            "changed": False,
            "valid": True,
            "settings": {k: v for k, v in config.__dict__.items() if not any(s in k for s in secret)},
        }
    )
