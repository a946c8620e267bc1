"""Sign-in throttling in Redis (through :class:`asyncworker.queue.Queue`).

Failures are counted per account (the email as typed, lower-cased, whether or not
an account has it: the answer must not tell) and per client address, each in a
15-minute window from its first failure. From the 10th failure on, any attempt on
that account or from that address gets ``429`` with ``Retry-After`` until its window
ends, before the password is even checked.
"""

from __future__ import annotations

from webapp.auth.headers import client
from webapp.errors import HTTPError
from webapp.resources import resources

MAX_FAILURES = 10
WINDOW_S = 15 * 60


def _counters(email: str) -> list[str]:
    keys = resources().queue.keys
    return [keys.login_failures("account", email), keys.login_failures("address", client())]


async def check(email: str) -> None:
    """Raise 429 with Retry-After when the account or the address is locked out."""
    count, retry_after = await resources().queue.failures(_counters(email))
    if count >= MAX_FAILURES:
        raise HTTPError.retry_later(429, "too many failed sign-ins, retry later", retry_after)


async def failed(email: str) -> None:
    await resources().queue.count_failure(_counters(email), WINDOW_S)
