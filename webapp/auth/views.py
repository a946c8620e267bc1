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


async def _checked(email: str, stored: str | None, password: str) -> bool:
    """Whether ``password`` is right, counted by the throttle before the check (429 when
    over a limit, 503 when too many checks wait); a success gives its attempt back."""
    tried = await throttle.attempt(email)
    try:
        ok = await passwords.check(stored, password)
    except passwords.Busy as exc:
        await throttle.give_back(tried)  # no check was made
        raise HTTPError.retry_later(503, str(exc).capitalize() + ".", exc.retry_after) from None
    if ok:
        await throttle.give_back(tried)
    return ok


async def _attempt(email: str, password: str) -> accounts.User | None:
    """The user whose password this is (same work for an unknown email), or None."""
    async with resources().sessions() as s:
        user = await accounts.user_by_email(s, email)
    ok = await _checked(email, user.password_hash if user else None, password)
    return user if ok and user is not None else None


def _signed_in(response: Response, token: str, user: accounts.User) -> Response:
    return throttle.remember_device(sessions.with_cookie(response, token), user.email)


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
    return _signed_in(redirect(target, 303), await sessions.start(user), user)


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
    return _signed_in(redirect("/account", 303), await sessions.start(user), user)


@bp.post("/logout")
async def logout() -> Response:
    return await sessions.end(redirect("/login", 303))


async def _change_password(user: accounts.User) -> str | None:
    """Apply the form; an error message, or None when the password was changed."""
    form = request.form
    if form.get("new", "") != form.get("confirm", ""):
        return "The two new passwords differ."
    try:
        passwords.check_strength(form.get("new", ""))
    except passwords.WeakPassword as exc:
        return str(exc).capitalize() + "."
    if user.password_hash and not await _checked(
        user.email, user.password_hash, form.get("current", "")
    ):
        return "The current password is wrong."
    try:
        new_hash = await passwords.new_hash(form.get("new", ""))
    except passwords.Busy as exc:
        raise HTTPError.retry_later(503, str(exc).capitalize() + ".", exc.retry_after) from None
    async with resources().sessions.begin() as s:
        await accounts.set_password(s, user.id, new_hash)
    return None


@bp.route("/account", methods=["GET", "POST"])
async def account() -> Response:
    user: accounts.User = g.user
    if request.method == "GET":
        return _page("account.html", user=user)
    try:
        error = await _change_password(user)
    except HTTPError as exc:  # throttled, or too many checks waiting
        page = _page("account.html", exc.status, user=user, error=exc.message)
        page.headers.update(exc.headers)
        return page
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
