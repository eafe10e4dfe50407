"""The dashboard's login session: a cookie that proves the admin token was shown, without holding it.

The cookie carries an expiry and an HMAC of it keyed with the admin token, so every worker can
check it with no shared state, a stolen cookie is worth a dashboard session and no more, and
changing the admin token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE = "stockguard_dashboard"
_PURPOSE = b"stockguard dashboard session\n"


def issue(admin_token: str, lifetime_seconds: float, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + lifetime_seconds)
    return f"{expires}.{_sign(admin_token, expires)}"


def is_valid(cookie: str | None, admin_token: str, now: float | None = None) -> bool:
    if not cookie or "." not in cookie:
        return False
    expires_text, signature = cookie.split(".", 1)
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature, _sign(admin_token, expires))


def _sign(admin_token: str, expires: int) -> str:
    message = _PURPOSE + str(expires).encode()
    return hmac.new(admin_token.encode(), message, hashlib.sha256).hexdigest()
