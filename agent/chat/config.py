"""The chat's config: :class:`~tastelens.chat_config.ChatConfig` (kept in the core so that
the settings can hold it), under the name the chat modules import."""

from tastelens.chat_config import ChatConfig

__all__ = ["ChatConfig"]
