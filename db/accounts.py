"""Storage of accounts: users, registered sites and viewers, sessions, API keys, share links.

Plain queries over the tables of :mod:`db.models`; every secret arrives here already
hashed (the web's ``webapp.auth`` holds SECRET_KEY and does the hashing), so nothing
in this module can reveal a usable credential. Times are naive UTC, as in the tables.
Callers own the transaction (``async with sessions.begin()``), so a removal and every
right derived from it go in one transaction.

A right on a site (viewer, key scope, share link) is stored against the site's
registration id and read back through it: a name registered again after a removal is
a new registration, which no right made for the old one reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from db.models import (
    api_key_sites,
    api_keys,
    auth_sessions,
    login_tokens,
    share_links,
    site_viewers,
    sites,
    users,
)

# last_seen_at / last_used_at are written at most this often per session or key.
TOUCH_EVERY = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class AccountError(Exception):
    """A refused account operation; the message is meant for the user, as is."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    password_hash: str
    is_admin: bool


@dataclass(frozen=True)
class ApiKey:
    id: int
    user: User
    sites: frozenset[str] | None  # None: every site its user may read
    last_used_at: datetime | None


def _user(row: object) -> User:
    return User(int(row.id), row.email, row.password_hash, bool(row.is_admin))  # type: ignore[attr-defined]


_USER_COLUMNS = (users.c.id, users.c.email, users.c.password_hash, users.c.is_admin)

# ---------------------------------------------------------------- users


async def count_users(s: AsyncSession) -> int:
    return int((await s.execute(select(func.count()).select_from(users))).scalar_one())


async def add_user(s: AsyncSession, email: str, password_hash: str, is_admin: bool) -> User:
    if await user_by_email(s, email) is not None:
        raise AccountError(f"a user with the email {email!r} already exists")
    result = await s.execute(
        insert(users).values(
            email=email, password_hash=password_hash, is_admin=is_admin, created_at=utcnow()
        )
    )
    return User(int(result.inserted_primary_key[0]), email, password_hash, is_admin)  # type: ignore[attr-defined]


async def user_by_email(s: AsyncSession, email: str) -> User | None:
    row = (await s.execute(select(*_USER_COLUMNS).where(users.c.email == email))).first()
    return None if row is None else _user(row)


async def user_by_id(s: AsyncSession, user_id: int) -> User | None:
    row = (await s.execute(select(*_USER_COLUMNS).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def list_users(s: AsyncSession) -> list[User]:
    rows = await s.execute(select(*_USER_COLUMNS).order_by(users.c.id))
    return [_user(row) for row in rows]


async def set_password(s: AsyncSession, user_id: int, password_hash: str) -> None:
    """Change the password and end every session of the user."""
    await s.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
    await s.execute(delete(auth_sessions).where(auth_sessions.c.user_id == user_id))


async def remove_user(s: AsyncSession, email: str) -> None:
    """Delete the user with its sessions, keys, viewer rights and sign-in links, and
    unregister its sites with every right on them (their data stays, readable by admins)."""
    user = await user_by_email(s, email)
    if user is None:
        raise AccountError(f"no user with the email {email!r}")
    if user.is_admin:
        admins = await s.scalar(select(func.count()).select_from(users).where(users.c.is_admin))
        if int(admins or 0) <= 1:
            raise AccountError(f"{email!r} is the last admin: make another admin first")
    owned = select(sites.c.id).where(sites.c.owner_id == user.id)
    await _remove_registrations(s, [int(i) for i in (await s.execute(owned)).scalars()])
    keys = select(api_keys.c.id).where(api_keys.c.user_id == user.id)
    await s.execute(delete(api_key_sites).where(api_key_sites.c.key_id.in_(keys)))
    for table in (api_keys, auth_sessions, site_viewers, login_tokens):
        await s.execute(delete(table).where(table.c.user_id == user.id))
    await s.execute(delete(users).where(users.c.id == user.id))


# ---------------------------------------------------------------- sites


async def registration(s: AsyncSession, site_id: str) -> int | None:
    """The id of ``site_id``'s registration, or None when nobody registered it."""
    found = await s.scalar(select(sites.c.id).where(sites.c.site_id == site_id))
    return None if found is None else int(found)


async def _registered(s: AsyncSession, site_id: str) -> int:
    found = await registration(s, site_id)
    if found is None:
        raise AccountError(f"the site {site_id!r} is not registered: register it first")
    return found


async def register_site(s: AsyncSession, site_id: str, owner: User) -> int:
    """A new registration of ``site_id`` owned by ``owner``; its id."""
    if await registration(s, site_id) is not None:
        raise AccountError(f"the site {site_id!r} is already registered")
    result = await s.execute(
        insert(sites).values(site_id=site_id, owner_id=owner.id, created_at=utcnow())
    )
    return int(result.inserted_primary_key[0])  # type: ignore[attr-defined]


async def _remove_registrations(s: AsyncSession, ids: list[int]) -> None:
    """Delete registrations and every right on them: viewers, key scopes, share links."""
    if not ids:
        return
    for table, column in (
        (site_viewers, site_viewers.c.site_ref),
        (api_key_sites, api_key_sites.c.site_ref),
        (share_links, share_links.c.site_ref),
        (sites, sites.c.id),
    ):
        await s.execute(delete(table).where(column.in_(ids)))


async def remove_site(s: AsyncSession, site_id: str) -> None:
    """Unregister ``site_id`` with every right on it (its data stays, readable by admins)."""
    await _remove_registrations(s, [await _registered(s, site_id)])


async def count_owned(s: AsyncSession, user: User) -> int:
    owned = select(func.count()).select_from(sites).where(sites.c.owner_id == user.id)
    return int(await s.scalar(owned) or 0)


async def add_viewer(s: AsyncSession, site_id: str, user: User) -> None:
    ref = await _registered(s, site_id)
    where = (site_viewers.c.site_ref == ref, site_viewers.c.user_id == user.id)
    if (await s.execute(select(site_viewers.c.site_ref).where(*where))).first() is None:
        await s.execute(insert(site_viewers).values(site_ref=ref, user_id=user.id))


async def remove_viewer(s: AsyncSession, site_id: str, user: User) -> bool:
    """Take ``user``'s viewer right on ``site_id`` away, with its keys' scope on that site
    (a key limited to it alone then reads nothing); False when it had none."""
    ref = await _registered(s, site_id)
    mine = (site_viewers.c.site_ref == ref, site_viewers.c.user_id == user.id)
    gone = await s.execute(delete(site_viewers).where(*mine))
    keys = select(api_keys.c.id).where(api_keys.c.user_id == user.id)
    await s.execute(
        delete(api_key_sites).where(
            api_key_sites.c.site_ref == ref, api_key_sites.c.key_id.in_(keys)
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


async def registered_sites(s: AsyncSession) -> list[tuple[str, str | None]]:
    """Every registered site with its owner's email, by name."""
    query = (
        select(sites.c.site_id, users.c.email)
        .select_from(sites.outerjoin(users, users.c.id == sites.c.owner_id))
        .order_by(sites.c.site_id)
    )
    return [(site, email) for site, email in await s.execute(query)]


async def owners(s: AsyncSession, site_ids: Iterable[str]) -> dict[str, str]:
    """The owner's email of each of ``site_ids`` that is registered."""
    query = (
        select(sites.c.site_id, users.c.email)
        .select_from(sites.join(users, users.c.id == sites.c.owner_id))
        .where(sites.c.site_id.in_(list(site_ids)))
    )
    return {site: email for site, email in await s.execute(query)}


def _names(refs: Select[tuple[int]]) -> Select[tuple[str]]:
    """The names of the registrations ``refs`` selects (rights whose site is gone: none)."""
    return select(sites.c.site_id).where(sites.c.id.in_(refs))


async def sites_of(s: AsyncSession, user: User) -> set[str]:
    """The sites ``user`` owns or views (admins read every site besides)."""
    owned = select(sites.c.site_id).where(sites.c.owner_id == user.id)
    viewed = _names(select(site_viewers.c.site_ref).where(site_viewers.c.user_id == user.id))
    return {row[0] for row in await s.execute(owned.union(viewed))}


# ---------------------------------------------------------------- sessions


async def create_session(s: AsyncSession, token_hash: str, user: User, ttl: timedelta) -> None:
    now = utcnow()
    await s.execute(
        insert(auth_sessions).values(
            token_hash=token_hash,
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
        )
    )


async def session_user(s: AsyncSession, token_hash: str) -> User | None:
    """The user of a live session (its last_seen_at refreshed at most once a minute)."""
    now = utcnow()
    query = (
        select(*_USER_COLUMNS, auth_sessions.c.last_seen_at)
        .select_from(auth_sessions.join(users, users.c.id == auth_sessions.c.user_id))
        .where(auth_sessions.c.token_hash == token_hash, auth_sessions.c.expires_at > now)
    )
    row = (await s.execute(query)).first()
    if row is None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        where = auth_sessions.c.token_hash == token_hash
        await s.execute(update(auth_sessions).where(where).values(last_seen_at=now))
    return _user(row)


async def delete_session(s: AsyncSession, token_hash: str) -> None:
    await s.execute(delete(auth_sessions).where(auth_sessions.c.token_hash == token_hash))


async def delete_expired_sessions(s: AsyncSession) -> None:
    await s.execute(delete(auth_sessions).where(auth_sessions.c.expires_at <= utcnow()))


async def create_login_token(s: AsyncSession, token_hash: str, user: User, ttl: timedelta) -> None:
    expires = utcnow() + ttl
    await s.execute(
        insert(login_tokens).values(token_hash=token_hash, user_id=user.id, expires_at=expires)
    )


async def login_token_valid(s: AsyncSession, token_hash: str) -> bool:
    """Whether a one-time sign-in token exists and has not expired (nothing is used up)."""
    row = (
        await s.execute(select(login_tokens).where(login_tokens.c.token_hash == token_hash))
    ).first()
    return row is not None and row.expires_at > utcnow()


async def use_login_token(s: AsyncSession, token_hash: str) -> User | None:
    """The user of a one-time sign-in token, deleting it (a second use finds nothing)."""
    where = login_tokens.c.token_hash == token_hash
    row = (await s.execute(select(login_tokens).where(where))).first()
    if row is None:
        return None
    deleted = await s.execute(delete(login_tokens).where(where))
    if deleted.rowcount != 1 or row.expires_at <= utcnow():  # type: ignore[attr-defined]
        return None
    return await user_by_id(s, int(row.user_id))


# ---------------------------------------------------------------- API keys


async def create_key(
    s: AsyncSession, user: User, name: str, prefix: str, key_hash: str, site_ids: Iterable[str]
) -> int:
    """A key of ``user``: limited to the registered sites ``site_ids``, or reading every
    site its user reads when there are none."""
    wanted = sorted(set(site_ids))
    refs = [await _registered(s, site_id) for site_id in wanted]
    result = await s.execute(
        insert(api_keys).values(
            user_id=user.id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            created_at=utcnow(),
            all_sites=not refs,
        )
    )
    key_id = int(result.inserted_primary_key[0])  # type: ignore[attr-defined]
    for ref in refs:
        await s.execute(insert(api_key_sites).values(key_id=key_id, site_ref=ref))
    return key_id


async def key_by_hash(s: AsyncSession, key_hash: str) -> ApiKey | None:
    """The live (not revoked) key with this hash, its last use refreshed once a minute."""
    query = (
        select(
            *_USER_COLUMNS,
            api_keys.c.id.label("key_id"),
            api_keys.c.last_used_at,
            api_keys.c.all_sites,
        )
        .select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    )
    row = (await s.execute(query)).first()
    if row is None:
        return None
    key_id = int(row.key_id)
    site_ids: frozenset[str] | None = None
    if not row.all_sites:
        scoped = _names(select(api_key_sites.c.site_ref).where(api_key_sites.c.key_id == key_id))
        site_ids = frozenset(str(name) for name in (await s.execute(scoped)).scalars())
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        await s.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))
    return ApiKey(key_id, _user(row), site_ids, row.last_used_at)


async def list_keys(s: AsyncSession, user: User | None = None) -> list[dict[str, object]]:
    """Keys (all, or ``user``'s) for display: never their hash."""
    query = (
        select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.prefix,
            users.c.email,
            api_keys.c.created_at,
            api_keys.c.last_used_at,
            api_keys.c.revoked_at,
            api_keys.c.all_sites,
        )
        .select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))
        .order_by(api_keys.c.id)
    )
    if user is not None:
        query = query.where(api_keys.c.user_id == user.id)
    keys = [dict(row._mapping) for row in await s.execute(query)]
    scopes = await s.execute(
        select(api_key_sites.c.key_id, sites.c.site_id)
        .select_from(api_key_sites.join(sites, sites.c.id == api_key_sites.c.site_ref))
        .where(api_key_sites.c.key_id.in_([key["id"] for key in keys]))
    )
    by_key: dict[int, list[str]] = {}
    for key_id, site_id in scopes:
        by_key.setdefault(int(key_id), []).append(site_id)
    for key in keys:
        # None: every site its user reads; a list (maybe empty): only those.
        limited = by_key.get(int(str(key["id"])), [])
        key["sites"] = None if key.pop("all_sites") else sorted(limited)
    return keys


async def revoke_key(s: AsyncSession, key_id: int, user: User | None = None) -> bool:
    """Revoke a key (only ``user``'s when given); False when there is no such live key."""
    where = [api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)]
    if user is not None:
        where.append(api_keys.c.user_id == user.id)
    result = await s.execute(update(api_keys).where(*where).values(revoked_at=utcnow()))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- share links


async def create_share(s: AsyncSession, site_id: str, prefix: str, token_hash: str) -> None:
    ref = await _registered(s, site_id)
    await s.execute(
        insert(share_links).values(
            site_ref=ref, prefix=prefix, token_hash=token_hash, created_at=utcnow()
        )
    )


async def share_site(s: AsyncSession, token_hash: str) -> str | None:
    """The site a live share token opens (its registration still there), or None."""
    query = (
        select(sites.c.site_id)
        .select_from(share_links.join(sites, sites.c.id == share_links.c.site_ref))
        .where(share_links.c.token_hash == token_hash, share_links.c.revoked_at.is_(None))
    )
    return (await s.execute(query)).scalar_one_or_none()


async def live_shares(s: AsyncSession, site_ids: Iterable[str]) -> dict[str, list[str]]:
    """The prefixes of the live share links of each site."""
    query = (
        select(sites.c.site_id, share_links.c.prefix)
        .select_from(share_links.join(sites, sites.c.id == share_links.c.site_ref))
        .where(sites.c.site_id.in_(list(site_ids)), share_links.c.revoked_at.is_(None))
        .order_by(share_links.c.id)
    )
    found: dict[str, list[str]] = {}
    for site_id, prefix in await s.execute(query):
        found.setdefault(site_id, []).append(prefix)
    return found


async def revoke_shares(s: AsyncSession, site_id: str, prefix: str | None = None) -> int:
    """Revoke the site's live share links (or the one with ``prefix``); how many."""
    ref = await registration(s, site_id)
    if ref is None:
        return 0
    where = [share_links.c.site_ref == ref, share_links.c.revoked_at.is_(None)]
    if prefix is not None:
        where.append(share_links.c.prefix == prefix)
    result = await s.execute(update(share_links).where(*where).values(revoked_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]
