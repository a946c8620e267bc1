"""``analytics users|sites|keys``: accounts from the command line, every command scriptable.

No command prompts when stdin is not a terminal (``users add`` then reads the
password with ``--password-stdin``). A command that prints a secret (a key, a share
URL, a sign-in link) prints it alone on its last line of stdout, once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asyncworker.cli import run_coroutine
from db import accounts
from db.accounts import AccountError
from db.models import rollup_sites
from db.settings import Settings
from webapp.auth import admin

T = TypeVar("T")


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from db.engine import create_engine

    async def go() -> T:
        engine = create_engine(settings, pool_size=1)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False).begin() as s:
                return await work(s)
        finally:
            await engine.dispose()

    result: T = run_coroutine(go())
    return result


def base_url(settings: Settings, given: str | None) -> str:
    """Where links point: --base-url, else PUBLIC_URL, else the running ``serve``'s URL,
    else FLASK_HOST:FLASK_PORT."""
    if given:
        return given.rstrip("/")
    if settings.public_url:
        return settings.public_url
    if settings.serve_beside is not None:
        return settings.serve_beside.base_url
    host = "127.0.0.1" if settings.flask_host in ("0.0.0.0", "::", "") else settings.flask_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.flask_port}"


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccountError("stdin is not a terminal: give the password with --password-stdin")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def users_add(settings: Settings, args: argparse.Namespace) -> str:
    password = _password(args)
    user = _in_transaction(settings, lambda s: admin.add_user(s, args.email, password, args.admin))
    return f"User {user.email} added" + (" (admin)" if user.is_admin else "")


def users_list(settings: Settings, _args: argparse.Namespace) -> str:
    found = _in_transaction(settings, accounts.list_users)
    return "\n".join(f"{u.email}\t{'admin' if u.is_admin else 'user'}" for u in found)


def users_remove(settings: Settings, args: argparse.Namespace) -> str:
    _in_transaction(settings, lambda s: accounts.remove_user(s, args.email.strip().lower()))
    return (
        f"User {args.email} removed (with its sessions and keys; its sites unregistered, "
        "with their viewers, key scopes and share links)"
    )


def users_login_link(settings: Settings, args: argparse.Namespace) -> str:
    key = settings.require_secret_key()

    async def work(s: AsyncSession) -> str:
        return await admin.login_link_token(s, key, await admin.user(s, args.email))

    token = _in_transaction(settings, work)
    url = f"{base_url(settings, args.base_url)}/login/once/{token}"
    return f"One-time sign-in link for {args.email} (valid 24 hours):\n{url}"


def users_first_run(settings: Settings, args: argparse.Namespace) -> str:
    """For ``analytics serve``: a sign-in link while no account has a password, else nothing."""
    key = settings.require_secret_key()
    token = _in_transaction(settings, lambda s: admin.first_run_token(s, key))
    if token is None:
        return ""
    url = f"{base_url(settings, args.base_url)}/login/once/{token}"
    return f"First run: sign in as the admin with this one-time link (valid 24 hours):\n  {url}"


def sites_add(settings: Settings, args: argparse.Namespace) -> str:
    async def work(s: AsyncSession) -> None:
        await accounts.register_site(s, args.site, await admin.user(s, args.owner))

    _in_transaction(settings, work)
    return f"Site {args.site} added, owned by {args.owner}"


def sites_add_viewer(settings: Settings, args: argparse.Namespace) -> str:
    async def work(s: AsyncSession) -> None:
        await accounts.add_viewer(s, args.site, await admin.user(s, args.email))

    _in_transaction(settings, work)
    return f"{args.email} now reads {args.site}"


def sites_remove_viewer(settings: Settings, args: argparse.Namespace) -> str:
    async def work(s: AsyncSession) -> bool:
        return await accounts.remove_viewer(s, args.site, await admin.user(s, args.email))

    if not _in_transaction(settings, work):
        raise AccountError(f"{args.email} is not a viewer of {args.site}")
    return f"{args.email} no longer reads {args.site} (nor do its keys)"


def sites_remove(settings: Settings, args: argparse.Namespace) -> str:
    _in_transaction(settings, lambda s: accounts.remove_site(s, args.site))
    return (
        f"Site {args.site} unregistered, with its viewers, key scopes and share links "
        "(its data stays, readable by admins)"
    )


def sites_list(settings: Settings, _args: argparse.Namespace) -> str:
    async def work(s: AsyncSession) -> list[tuple[str, str]]:
        owners = dict(await accounts.registered_sites(s))
        seen = set((await s.execute(select(rollup_sites.c.site_id))).scalars())
        return [(site, owners.get(site) or "-") for site in sorted(seen | set(owners))]

    return "\n".join(f"{site}\t{owner}" for site, owner in _in_transaction(settings, work))


def sites_share(settings: Settings, args: argparse.Namespace) -> str:
    key = settings.require_secret_key()
    token = _in_transaction(settings, lambda s: admin.share(s, key, args.site))
    url = f"{base_url(settings, args.base_url)}/share/{token}"
    return f"Share link for {args.site} (read-only, shown once):\n{url}"


def sites_unshare(settings: Settings, args: argparse.Namespace) -> str:
    count = _in_transaction(settings, lambda s: accounts.revoke_shares(s, args.site))
    return f"{count} share link(s) of {args.site} revoked"


def keys_create(settings: Settings, args: argparse.Namespace) -> str:
    key = settings.require_secret_key()

    async def work(s: AsyncSession) -> str:
        owner = await admin.user(s, args.user)
        return await admin.create_key(s, key, owner, args.name, args.site or [])

    secret = _in_transaction(settings, work)
    scope = ", ".join(args.site) if args.site else f"every site {args.user} reads"
    return f"API key for {args.user} ({scope}); it is shown once:\n{secret}"


def keys_list(settings: Settings, _args: argparse.Namespace) -> str:
    lines = ["id\tprefix\tuser\tname\tsites\tlast used\tstate"]
    for k in _in_transaction(settings, accounts.list_keys):
        limited = k["sites"]
        sites = "*" if limited is None else ",".join(limited) or "-"  # type: ignore[arg-type]
        state = "revoked" if k["revoked_at"] else "active"
        used = k["last_used_at"] or "never"
        lines.append(
            f"{k['id']}\t{k['prefix']}\t{k['email']}\t{k['name']}\t{sites}\t{used}\t{state}"
        )
    return "\n".join(lines)


def keys_revoke(settings: Settings, args: argparse.Namespace) -> str:
    if not _in_transaction(settings, lambda s: accounts.revoke_key(s, args.key_id)):
        raise AccountError(f"no active key with id {args.key_id}")
    return f"Key {args.key_id} revoked"


def _runner(command: Callable[[Settings, argparse.Namespace], str]) -> Callable[..., int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            output = command(settings, args)
            if output:
                print(output)
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``users``, ``sites`` and ``keys`` with their subcommands."""
    url_help = "base URL of the dashboard (default http://FLASK_HOST:FLASK_PORT)"
    groups = {
        name: sub.add_parser(name, help=text).add_subparsers(dest="action", required=True)
        for name, text in (
            ("users", "add, list or remove users; one-time sign-in links"),
            ("sites", "register sites, list them, share links"),
            ("keys", "create, list or revoke API keys"),
        )
    }

    def add(group: str, name: str, func: Callable[..., str], text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = groups[group].add_parser(name, help=text)
        p.set_defaults(func=_runner(func))
        return p

    p = add("users", "add", users_add, "add a user (the first one is an admin)")
    p.add_argument("email")
    p.add_argument("--admin", action="store_true", help="reads every site, manages all")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add("users", "list", users_list, "list users")
    add("users", "remove", users_remove, "remove a user").add_argument("email")
    p = add("users", "login-link", users_login_link, "print a one-time sign-in link")
    p.add_argument("email")
    p.add_argument("--base-url", default=None, help=url_help)

    p = add("users", "first-run", users_first_run, "sign-in link while no password is set")
    p.add_argument("--base-url", default=None, help=url_help)

    p = add("sites", "add", sites_add, "register a site and give it an owner")
    p.add_argument("site")
    p.add_argument("--owner", required=True, help="email of the owner")
    p = add("sites", "add-viewer", sites_add_viewer, "let a user read a site (read-only)")
    p.add_argument("site")
    p.add_argument("email")
    p = add("sites", "remove-viewer", sites_remove_viewer, "take a viewer's right away")
    p.add_argument("site")
    p.add_argument("email")
    p = add("sites", "remove", sites_remove, "unregister a site and every right on it")
    p.add_argument("site")
    add("sites", "list", sites_list, "list sites (registered or with events) and owners")
    p = add("sites", "share", sites_share, "print a new read-only share URL")
    p.add_argument("site")
    p.add_argument("--base-url", default=None, help=url_help)
    add("sites", "unshare", sites_unshare, "revoke every share link of a site").add_argument("site")

    p = add("keys", "create", keys_create, "create a read-only API key (printed once)")
    p.add_argument("--user", required=True, help="email of the key's user")
    p.add_argument("--site", action="append", help="limit the key to this site (repeatable)")
    p.add_argument("--name", default="cli", help="a name to recognise it by")
    add("keys", "list", keys_list, "list keys (prefix, user, last use; never the key)")
    add("keys", "revoke", keys_revoke, "revoke a key").add_argument("key_id", type=int)
