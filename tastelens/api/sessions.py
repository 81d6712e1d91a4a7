"""Chat sessions kept in memory by the HTTP API: bounded in number and in idle time.

A session is created by the API's chat factory (normally
``tastelens.agent.chat.session.ChatSession``) and addressed by a random, unguessable id. Sessions
idle longer than ``ttl_s`` are dropped; when ``max_sessions`` are open, the least recently
used one is dropped to make room, so a client opening sessions in a loop cannot exhaust
memory. Each session has its own lock: two messages to one conversation are answered in
order, while different conversations run in parallel (the routes run in a thread pool).
Nothing is persisted: a restart forgets every conversation.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
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
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Thread-safe map of session id -> :class:`ChatEntry` with a cap and an idle TTL."""

    def __init__(self, factory: Callable[[str | None], Any], *, max_sessions: int = 1_000,
                 ttl_s: float = 1_800.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1 or ttl_s <= 0:
            raise ValueError("max_sessions must be >= 1 and ttl_s > 0")
        self._factory = factory
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, ChatEntry] = OrderedDict()  # least recent first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def open(self, session_id: str | None, user: str | None) -> ChatEntry:
        """The entry for ``session_id``, or a new session for ``user`` when it is None.

        Raises :class:`UnknownSessionError` for an unknown or expired id and
        :class:`SessionUserMismatchError` when ``user`` differs from the session's user.
        """
        now = self._clock()
        if session_id is not None:
            with self._lock:
                self._expire(now)
                entry = self._entries.get(session_id)
                if entry is None:
                    raise UnknownSessionError(
                        f"unknown or expired chat session_id {session_id!r}; omit session_id "
                        "to start a new conversation")
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
                          last_used=now)
        with self._lock:
            self._expire(now)
            while len(self._entries) >= self.max_sessions:
                self._entries.popitem(last=False)
            self._entries[entry.id] = entry
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

    def _expire(self, now: float) -> None:
        # Entries are in last-used order, so the expired ones are at the front.
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.last_used <= self.ttl_s:
                break
            self._entries.popitem(last=False)
