"""Who is calling, and which users' data they may reach.

Two kinds of credentials, both sent as ``Authorization: Bearer <value>`` (or ``X-API-Key``):

- the **operator key** (``api.api_key``): every route, every user;
- a **user token** (``tastelens token issue --user U``, :mod:`tastelens.user_tokens`): user U's
  data only — ``/v1/users/U/…``, recommendations for U, chat sessions started for U — plus
  what needs no user (anonymous chat and recommendations).

With an operator key configured every ``/v1`` request needs one of the two (401 without).
Without one (allowed on loopback only) a request with no credentials may still ask for
anonymous answers, but a request about user U needs U's token unless ``api.open_user_data``
is on. A wrong credential is a 401 whatever the configuration, and a user token naming
another user is a 403; both are decided before the user id is looked up, so they say nothing
about which ids exist.

:func:`current_caller` is the FastAPI dependency (async: a key comparison and at most one
indexed SQLite read, on the event loop); routes pass the :class:`Caller` to
:meth:`Access.check_user` for the user their request is about.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from tastelens.config.settings import APISettings
from tastelens.errors import ConfigError
from tastelens.user_tokens import TokenStore, looks_like_token

# Module-level: FastAPI resolves the (postponed) annotations below in this module's globals.
_BEARER = HTTPBearer(auto_error=False,
                     description="`Authorization: Bearer <api key or user token>`")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                       description="The API key, or a user's token.")


@dataclass(frozen=True)
class Caller:
    """The credentials a request carried, once checked."""

    operator: bool = False
    """It sent the operator key."""
    user: str | None = None
    """The user its token is for (None: no user token)."""
    address: str = ""

    @property
    def client(self) -> str | None:
        """Who per-client limits count: the token's user, else the address; None for the
        operator (a trusted back end may carry many people's sessions)."""
        if self.operator:
            return None
        return f"user:{self.user}" if self.user is not None else f"addr:{self.address}"


def unauthorized(message: str) -> StarletteHTTPException:
    return StarletteHTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


class Access:
    """The access rule of one app: its operator key, its users' tokens, ``open_user_data``."""

    def __init__(self, api: APISettings, tokens_path: Callable[[], Path | None]) -> None:
        key = api.api_key.get_secret_value() if api.api_key is not None else None
        if key is not None and not key.strip():
            raise ConfigError("settings api.api_key is set but empty; unset it (no auth) or "
                              "set a real key")
        self._key = key.encode() if key is not None else None
        self.open_user_data = api.open_user_data and key is None
        self._tokens_path = tokens_path
        self._store: TokenStore | None = None
        self._lock = threading.Lock()

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def caller(self, supplied: list[str], address: str) -> Caller:
        """The caller behind the supplied credential values; 401 for a missing (when a key
        is configured) or a wrong one."""
        if not supplied:
            if self._key is not None:
                raise unauthorized("missing API key or token: send `Authorization: Bearer "
                                   "<key or token>` or `X-API-Key: <key or token>`")
            return Caller(address=address)
        if self._key is not None:
            # Compare every supplied value (no early exit) so timing says nothing about which.
            ok = False
            for value in supplied:
                ok |= hmac.compare_digest(value.encode(), self._key)
            if ok:
                return Caller(operator=True, address=address)
        for value in supplied:
            if looks_like_token(value):
                user = self._user_of(value)
                if user is not None:
                    return Caller(user=user, address=address)
        raise unauthorized("invalid API key or token (revoked, or not issued for this "
                           "server's dataset)")

    def check_user(self, caller: Caller, user: str) -> None:
        """Let ``caller`` reach ``user``'s data, or raise 401 / 403."""
        if caller.operator or caller.user == user:
            return
        if caller.user is not None:
            raise StarletteHTTPException(
                403, f"this token is for user {caller.user!r}; it cannot reach user {user!r}")
        if self.open_user_data:
            return
        how = f"`tastelens token issue --user {user}` makes one"
        raise unauthorized(f"user {user!r}'s data needs their token ({how})"
                           + (" or the API key" if self._key is not None else ""))

    def _user_of(self, token: str) -> str | None:
        with self._lock:
            if self._store is None:
                path = self._tokens_path()
                if path is None or not path.is_file():
                    return None  # no token was ever issued for this dataset
                self._store = TokenStore(path)
            store = self._store
        return store.user_of(token)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


async def current_caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
        key: Annotated[str | None, Security(_HEADER)]) -> Caller:
    """The request's :class:`Caller` (FastAPI caches it per request: the router's check and
    the route's parameter resolve it once)."""
    supplied = [c for c in ((credentials.credentials if credentials else None), key) if c]
    address = request.client.host if request.client is not None else ""
    return request.app.state.access.caller(supplied, address)
