"""Account operations shared by the ``analytics`` command and the tests.

Each takes an open :class:`AsyncSession` (the caller commits) and the SECRET_KEY
where a secret is made; each new secret is returned once and stored hashed.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from db import accounts
from db.accounts import AccountError, User
from webapp.auth import passwords
from webapp.auth.tokens import Kind, display_prefix, keyed_hash, new_secret

LOGIN_LINK_TTL = timedelta(hours=24)


async def add_user(s: AsyncSession, email: str, password: str | None, admin: bool) -> User:
    """A new user; the very first one is an admin whatever ``admin`` says."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError(f"not an email address: {email!r}")
    first = await accounts.count_users(s) == 0
    try:
        digest = passwords.hash_password(password) if password is not None else ""
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc)) from None
    return await accounts.add_user(s, email, digest, admin or first)


async def user(s: AsyncSession, email: str) -> User:
    found = await accounts.user_by_email(s, email.strip().lower())
    if found is None:
        raise AccountError(f"no user with the email {email!r}")
    return found


async def create_key(
    s: AsyncSession, secret_key: str, owner: User, name: str, site_ids: list[str]
) -> str:
    secret = new_secret(Kind.API_KEY)
    digest = keyed_hash(secret_key, Kind.API_KEY, secret)
    await accounts.create_key(s, owner, name, display_prefix(secret), digest, site_ids)
    return secret


async def share(s: AsyncSession, secret_key: str, site_id: str) -> str:
    token = new_secret(Kind.SHARE)
    digest = keyed_hash(secret_key, Kind.SHARE, token)
    await accounts.create_share(s, site_id, display_prefix(token), digest)
    return token


async def login_link_token(s: AsyncSession, secret_key: str, who: User) -> str:
    token = new_secret(Kind.LOGIN)
    digest = keyed_hash(secret_key, Kind.LOGIN, token)
    await accounts.create_login_token(s, digest, who, LOGIN_LINK_TTL)
    return token


async def first_run_token(s: AsyncSession, secret_key: str) -> str | None:
    """For ``analytics serve``: while no user has a password, a one-time sign-in token for
    the first admin (created as ``admin@localhost`` when there is no user); else None."""
    users = await accounts.list_users(s)
    if any(u.password_hash for u in users):
        return None
    admin = users[0] if users else await add_user(s, "admin@localhost", None, True)
    return await login_link_token(s, secret_key, admin)
