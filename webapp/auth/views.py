"""Signing in and out, the one-time sign-in link, the account page, share-link dashboards."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request
from werkzeug.wrappers import Response

from db import accounts
from webapp.auth import access, passwords, sessions, throttle
from webapp.auth.tokens import Kind
from webapp.errors import HTTPError
from webapp.resources import resources

bp = Blueprint("auth", __name__, template_folder="../templates")

WRONG = "Wrong email or password."


def _safe_next(raw: str | None) -> str:
    """Only a path of this site (no scheme, no host, no '//' or '\\' trick)."""
    if not raw or not raw.startswith("/") or not raw.isprintable() or "\\" in raw:
        return "/"
    if any(c.isspace() for c in raw) or raw.startswith("//"):
        return "/"  # browsers drop tabs and newlines: "/\t/evil" would become "//evil"
    parts = urlsplit(raw)
    return "/" if parts.scheme or parts.netloc else raw


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status, mimetype="text/html")


async def _attempt(email: str, password: str) -> accounts.User | None:
    """Check the password (same work for an unknown email), counting failures."""
    await throttle.check(email)
    async with resources().sessions() as s:
        user = await accounts.user_by_email(s, email)
    ok = passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok:
        await throttle.failed(email)
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
async def login() -> Response:
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if await access.session_user() is not None:
            return redirect(target, 303)
        return _page("login.html", next=target)
    email = request.form.get("email", "").strip().lower()
    try:
        user = await _attempt(email, request.form.get("password", ""))
    except HTTPError as exc:
        page = _page("login.html", exc.status, next=target, email=email, error=exc.message)
        page.headers.update(exc.headers)
        return page
    if user is None:
        return _page("login.html", 401, next=target, email=email, error=WRONG)
    return sessions.with_cookie(redirect(target, 303), await sessions.start(user))


@bp.route("/login/once/<token>", methods=["GET", "POST"])
async def login_once(token: str) -> Response:
    """A one-time sign-in link (``analytics serve``'s first run, ``users login-link``).

    Opening it shows a button; only the button's POST uses the link up. A GET must not,
    or a chat app's link preview or a mail scanner fetching it would spend it first.
    """
    used_up = _page("login.html", 404, next="/", error="This sign-in link is used or expired.")
    token_hash = access.hashed(Kind.LOGIN, token)
    if request.method == "GET":
        async with resources().sessions() as s:
            valid = await accounts.login_token_valid(s, token_hash)
        return _page("login_once.html", action=request.path) if valid else used_up
    async with resources().sessions.begin() as s:
        user = await accounts.use_login_token(s, token_hash)
    if user is None:
        return used_up
    return sessions.with_cookie(redirect("/account", 303), await sessions.start(user))


@bp.post("/logout")
async def logout() -> Response:
    return await sessions.end(redirect("/login", 303))


async def _change_password(user: accounts.User) -> str | None:
    """Apply the form; an error message, or None when the password was changed."""
    form = request.form
    if user.password_hash and not passwords.verify(user.password_hash, form.get("current", "")):
        return "The current password is wrong."
    if form.get("new", "") != form.get("confirm", ""):
        return "The two new passwords differ."
    try:
        new_hash = passwords.hash_password(form.get("new", ""))
    except passwords.WeakPassword as exc:
        return str(exc).capitalize() + "."
    async with resources().sessions.begin() as s:
        await accounts.set_password(s, user.id, new_hash)
    return None


@bp.route("/account", methods=["GET", "POST"])
async def account() -> Response:
    user: accounts.User = g.user
    if request.method == "GET":
        return _page("account.html", user=user)
    error = await _change_password(user)
    if error is not None:
        return _page("account.html", 400, user=user, error=error)
    # Every session of the user is gone, this one included: sign this browser in afresh.
    async with resources().sessions() as s:
        fresh = await accounts.user_by_id(s, user.id)
    assert fresh is not None
    token = await sessions.start(fresh)
    page = _page("account.html", user=fresh, notice="Password changed; other sessions ended.")
    return sessions.with_cookie(page, token)


@bp.get("/share/<token>")
async def share_page(token: str) -> Response:
    """The dashboard locked to the link's site; its data calls send the token as a header."""
    async with resources().sessions() as s:
        site_id = await accounts.share_site(s, access.hashed(Kind.SHARE, token))
    if site_id is None:
        return _page("login.html", 404, next="/", error="This share link is revoked or unknown.")
    return _page("dashboard.html", share_token=token, share_site=site_id)
