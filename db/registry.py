"""The registered sites, cached in each process for the hot path (``REGISTERED_SITES_ONLY``).

A process asks :meth:`SiteRegistry.get` for each event it takes in: a dictionary lookup,
no I/O, nothing that waits. A background task (:meth:`SiteRegistry.run`) keeps the copy
fresh: every :data:`REFRESH_S` one cheap query (the count and the highest id of
``sites``) tells whether anything changed, and only then the whole table is read again,
in one query, into a new dictionary swapped in at once. Ids are never given out twice
(db/models.py), so a registration or a removal always changes that pair; a full read
every :data:`FULL_RELOAD_S` besides picks up changes to other columns of a row.

New registrations are seen within :data:`REFRESH_S`. Memory is one small
:class:`SiteInfo` per registered site, bounded by registrations (a non-admin owns at
most ``webapp.auth.manage.MAX_OWNED`` sites), never by what senders make up. With the
database away the last copy stays in use; until a first copy is loaded, :meth:`get`
raises :class:`NotLoaded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import describe
from db.models import sites

log = logging.getLogger("db")

REFRESH_S = 2.0
FULL_RELOAD_S = 60.0


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What a process knows of a registered site without asking the database."""

    site_id: str
    registration: int


class NotLoaded(Exception):
    """The registry has not been read from the database yet."""


class SiteRegistry:
    """This process's copy of the registered sites (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, refresh_s: float = REFRESH_S) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self._sites: dict[str, SiteInfo] | None = None
        self._mark: tuple[int, int] | None = None
        self._loaded_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._away = False

    def get(self, site_id: str) -> SiteInfo | None:
        """The registered site ``site_id``, or None; :class:`NotLoaded` before a first read."""
        if self._sites is None:
            raise NotLoaded("the registered sites are not loaded yet")
        return self._sites.get(site_id)

    async def refresh(self) -> None:
        """Read the table again if it changed (or the last full read is old)."""
        async with self.engine.connect() as conn:
            count, highest = (await conn.execute(select(func.count(), func.max(sites.c.id)))).one()
            mark = (int(count), int(highest or 0))
            stale = time.monotonic() - self._loaded_at >= FULL_RELOAD_S
            if mark == self._mark and not stale:
                return
            rows = await conn.execute(select(sites.c.site_id, sites.c.id))
            found = {site_id: SiteInfo(site_id, int(ref)) for site_id, ref in rows}
        self._sites, self._mark, self._loaded_at = found, mark, time.monotonic()

    async def run(self) -> None:
        """Refresh every ``refresh_s`` until cancelled; one log line when the database
        goes away and one when it is back."""
        while True:
            try:
                await self.refresh()
                if self._away:
                    self._away = False
                    log.warning("registered sites readable again")
            except (SQLAlchemyError, OSError) as exc:
                if not self._away:
                    self._away = True
                    log.warning(
                        "registered sites not refreshed (%s); keeping the last copy", describe(exc)
                    )
            await asyncio.sleep(self.refresh_s)

    async def start(self, first_read_s: float = 5.0) -> None:
        """A first read (given up after ``first_read_s``: the task keeps trying), then the
        background refresh."""
        with contextlib.suppress(SQLAlchemyError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self.refresh(), first_read_s)
        self._task = asyncio.create_task(self.run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
