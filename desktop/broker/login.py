"""Kite login as a trader does it: browser + loopback listener, or a pasted redirect URL / token.

Flow (KITE.md "Login"): open `login_url(profile)` in the browser; Kite redirects to the profile's
registered redirect URL with `?request_token=..&status=success`; a `LoopbackListener` on that URL (or
the trader pasting it) yields the request token; `complete_login` exchanges it with
`generate_session` and stores the access token until 6 AM IST next day.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from desktop.broker.errors import BrokerError, LoginFailed, translate
from desktop.broker.kite_client import new_kite
from desktop.broker.profiles import IST, AccessGrant, Profile, SecretStore, now_ist, token_expiry

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[A-Za-z0-9]{6,64}$")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

_DONE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>KiteDesk</title></head>"
    "<body style='font-family:sans-serif;margin:3em'><h2>{title}</h2><p>{text}</p></body></html>"
)


def login_url(profile: Profile, redirect_params: dict[str, str] | None = None) -> str:
    """The Kite login page for `profile` (`redirect_params` come back on the redirect URL)."""
    url = f"{profile.login_url_root.rstrip('/')}/connect/login?" + urlencode(
        {"api_key": profile.api_key, "v": "3"}
    )
    if redirect_params:
        url += "&" + urlencode({"redirect_params": urlencode(redirect_params)})
    return url


def parse_request_token(text: str) -> str:
    """The request token in a pasted redirect URL or a bare token, or LoginFailed saying what is wrong."""
    text = (text or "").strip()
    if not text:
        raise LoginFailed("paste the address Kite redirected to, or the request token")
    if "://" in text or "?" in text or "request_token" in text:
        query = parse_qs(urlsplit(text).query or text.split("?", 1)[-1])
        status = query.get("status", ["success"])[0]
        if status != "success":
            raise LoginFailed(f"Kite reports the login as '{status}': log in again")
        tokens = query.get("request_token", [])
        if not tokens:
            raise LoginFailed("that address has no request_token: copy the whole address after logging in")
        text = tokens[0].strip()
    if not _TOKEN.match(text):
        raise LoginFailed("that does not look like a Kite request token (letters and digits only)")
    return text


def request_token_by_redirect(profile: Profile, timeout: float = 5.0) -> str:
    """Follows the login page's 302 without a browser (the simulator's auto-login; no real Kite)."""
    import requests  # here, not for the first window

    failure: BrokerError | None = None
    try:
        resp = requests.get(login_url(profile), allow_redirects=False, timeout=timeout)
    except requests.RequestException as exc:
        failure = translate(exc)
    if failure is not None:
        raise failure  # outside the except block: no raw exception chained as __context__
    location = resp.headers.get("Location", "")
    if resp.status_code not in (301, 302, 303, 307) or not location:
        raise LoginFailed(f"the login page did not redirect (HTTP {resp.status_code})")
    return parse_request_token(location)


class LoopbackListener:
    """A one-shot HTTP listener on the profile's loopback redirect URL that captures the request token."""

    def __init__(self, redirect_url: str) -> None:
        parts = urlsplit(redirect_url)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS:
            raise LoginFailed(
                "automatic login needs a redirect URL like http://127.0.0.1:5678/kitedesk/login "
                "registered on the Kite developer console; paste the redirect address instead"
            )
        self._host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
        self._port = parts.port or 80
        self._path = parts.path or "/"
        self._done = threading.Event()
        self._token: str | None = None
        self._error: BrokerError | None = None
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when the URL asked for port 0)."""
        return self._server.server_address[1] if self._server else self._port

    def start(self) -> LoopbackListener:
        """Binds the port and serves in a background thread."""
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                listener._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the request line holds the request token: never log it

        try:
            self._server = HTTPServer((self._host, self._port), Handler)
        except OSError as exc:
            raise LoginFailed(
                f"cannot listen on {self._host}:{self._port} for the login redirect ({exc.strerror}): "
                "paste the redirect address instead"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="kitedesk-login-listener"
        )
        self._thread.start()
        return self

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path != self._path:
            self._reply(request, 404, "Not found", "This is KiteDesk's login listener.")
            return
        try:
            self._token = parse_request_token("?" + parts.query)
            self._reply(request, 200, "Logged in", "KiteDesk has your login. You can close this tab.")
        except LoginFailed as exc:
            self._error = exc
            self._reply(request, 400, "Login failed", exc.trader_message)
        self._done.set()

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, code: int, title: str, text: str) -> None:
        body = _DONE_PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        request.send_response(code)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def wait(self, timeout: float) -> str:
        """The captured request token; LoginFailed on a failed login or after `timeout` seconds."""
        try:
            if not self._done.wait(timeout):
                raise LoginFailed(f"no login arrived within {timeout:.0f} s: try again or paste the address")
            if self._error is not None:
                raise self._error
            assert self._token is not None
            return self._token
        finally:
            self.close()

    def close(self) -> None:
        """Stops the server and joins its thread (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LoopbackListener:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def complete_login(
    profile: Profile,
    request_token: str,
    secrets: SecretStore,
    kite_factory: Callable[..., Any] = new_kite,
    timeout: float = 10.0,
    now: Callable[[], datetime] = now_ist,
) -> AccessGrant:
    """Exchanges the request token for the day's access token and stores it; checks the account matches."""
    api_secret = secrets.api_secret(profile.user_id)
    if not api_secret:
        raise LoginFailed(f"enter the API secret of {profile.user_id} first")
    kite = kite_factory(profile.api_key, root=profile.api_root, timeout=timeout)
    failure: BrokerError | None = None
    session: dict[str, Any] = {}
    try:
        session = kite.generate_session(request_token, api_secret=api_secret)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one of our errors
        failure = translate(exc, secrets=(api_secret, request_token))
        if failure.http_status in (400, 403):
            # A used/expired request token or a wrong secret: the trader must log in again.
            failure = LoginFailed(
                "Kite did not accept this login (expired token or wrong API secret).", failure.detail
            )
    finally:
        session_http = getattr(kite, "reqsession", None)
        if session_http is not None:
            session_http.close()
    if failure is not None:
        raise failure  # outside the except block: no raw exception chained as __context__
    if (
        not isinstance(session, dict)
        or not isinstance(session.get("access_token"), str)
        or not session["access_token"]
    ):
        raise LoginFailed("Kite's login reply could not be read (no access token): log in again.")
    user_id = str(session.get("user_id", ""))
    if user_id != profile.user_id:
        # Logging into the wrong account in the browser must never hand one profile another's token.
        raise LoginFailed(
            f"you logged in to Kite as {user_id or 'an unknown user'}, but this profile is {profile.user_id}"
        )
    # Expiry from our own wall clock at the exchange, not the reply's login_time: the same for real Kite,
    # and right for the simulator, whose login_time is market-clock time.
    grant = AccessGrant(profile.user_id, str(session["access_token"]), token_expiry(now()))
    secrets.set_access(grant)
    log.info(
        "logged in %s until %s", profile.user_id, grant.expires_at.astimezone(IST).strftime("%d %b %H:%M")
    )
    return grant


def reusable_access(
    profile: Profile, secrets: SecretStore, now: datetime | None = None
) -> AccessGrant | None:
    """Today's stored access grant of `profile`, if still valid (Kite returns the same token all day)."""
    return secrets.access(profile.user_id, now)
