"""Chat sessions kept in memory by the HTTP API: bounded in number and in idle time.

A session is created by the API's chat factory (normally
``tastelens.agent.chat.session.ChatSession``) and addressed by a random, unguessable id. Sessions
idle longer than ``ttl_s`` are dropped; when ``max_sessions`` are open, the least recently
used one is dropped to make room, so a client opening sessions in a loop cannot exhaust
memory. Each session also belongs to a client (a user token's user, or an address; see
:attr:`tastelens.api.access.Caller.client`), and a client keeps at most
``max_per_client``: opening one more drops that client's own least recently used session,
so one client opening sessions in a loop pushes out only its own conversations. Each session
has its own lock: two messages to one conversation are answered in order, while different
conversations run in parallel (the routes run in a thread pool). Nothing is persisted: a
restart forgets every conversation.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tastelens.errors import TastelensError


class UnknownSessionError(TastelensError):
    """A chat message named a session id that does not exist (or expired)."""


class SessionUserMismatchError(TastelensError):
    """A chat message named a user other than the one its session was started for."""


@dataclass
class ChatEntry:
    """One open conversation."""

    id: str
    session: Any
    user: str | None
    last_used: float
    client: str | None = None
    """Whose per-client cap it counts against (None: no cap)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Thread-safe map of session id -> :class:`ChatEntry` with a cap and an idle TTL."""

    def __init__(self, factory: Callable[[str | None], Any], *, max_sessions: int = 1_000,
                 max_per_client: int | None = None, ttl_s: float = 1_800.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1 or ttl_s <= 0 or (max_per_client is not None
                                              and max_per_client < 1):
            raise ValueError("max_sessions and max_per_client must be >= 1 and ttl_s > 0")
        self._factory = factory
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, ChatEntry] = OrderedDict()  # least recent first
        self._per_client: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def owner(self, session_id: str) -> str | None:
        """The user a live session was started for (None: anonymous); raises
        :class:`UnknownSessionError` for an unknown or expired id. Changes nothing."""
        with self._lock:
            self._expire(self._clock())
            entry = self._entries.get(session_id)
        if entry is None:
            raise _unknown(session_id)
        return entry.user

    def open(self, session_id: str | None, user: str | None,
             client: str | None = None) -> ChatEntry:
        """The entry for ``session_id``, or a new session for ``user`` (counted against
        ``client``'s cap) when it is None.

        Raises :class:`UnknownSessionError` for an unknown or expired id and
        :class:`SessionUserMismatchError` when ``user`` differs from the session's user.
        """
        now = self._clock()
        if session_id is not None:
            with self._lock:
                self._expire(now)
                entry = self._entries.get(session_id)
                if entry is None:
                    raise _unknown(session_id)
                if user is not None and user != entry.user:
                    raise SessionUserMismatchError(
                        f"chat session {session_id!r} belongs to user {entry.user!r}, not "
                        f"{user!r}; omit session_id to start a conversation for {user!r}")
                entry.last_used = now
                self._entries.move_to_end(session_id)
                return entry
        # Built outside the store lock: making a session may load a profile (seconds).
        session = self._factory(user)
        entry = ChatEntry(id=secrets.token_urlsafe(16), session=session, user=user,
                          last_used=now, client=client)
        with self._lock:
            self._expire(now)
            if client is not None and self.max_per_client is not None:
                while self._per_client[client] >= self.max_per_client:
                    # the client's own least recently used session (the map is in that order)
                    self._drop(next(e.id for e in self._entries.values() if e.client == client))
            while len(self._entries) >= self.max_sessions:
                self._drop(next(iter(self._entries)))
            self._entries[entry.id] = entry
            if client is not None:
                self._per_client[client] += 1
        return entry

    def touch(self, entry: ChatEntry) -> None:
        """Mark ``entry`` used now (after a long reply, so its idle time starts then)."""
        with self._lock:
            entry.last_used = self._clock()
            if entry.id in self._entries:
                self._entries.move_to_end(entry.id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._per_client.clear()

    def _drop(self, session_id: str) -> None:
        entry = self._entries.pop(session_id)
        if entry.client is not None:
            self._per_client[entry.client] -= 1
            if self._per_client[entry.client] <= 0:
                del self._per_client[entry.client]

    def _expire(self, now: float) -> None:
        # Entries are in last-used order, so the expired ones are at the front.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.last_used <= self.ttl_s:
                break
            self._drop(oldest.id)


def _unknown(session_id: str) -> UnknownSessionError:
    return UnknownSessionError(f"unknown or expired chat session_id {session_id!r}; omit "
                               "session_id to start a new conversation")
