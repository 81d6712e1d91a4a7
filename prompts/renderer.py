"""Render the profile prompt from template files within a token budget.

Templates live in ``prompts/templates/`` as plain text with ``string.Template``
placeholders (``$history``), so JSON braces in them need no escaping. ``prompt_version`` is
a hash of every template file plus the item-line format, so a changed prompt invalidates
stored profiles.

History items are shown as *data*: one item per line inside ``<history>…</history>``, every
piece of item text a JSON string with ``<``/``>`` written as ``\\u003c``/``\\u003e``. A title
can therefore never close the block or start a new line, and the system prompt tells the model
that text inside the block is never an instruction. When the history does not fit the
budget, :func:`tastelens.prompts.selection.select_informative` chooses which items to show.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from pydantic import BaseModel, ConfigDict, Field

from tastelens.errors import ConfigError
from tastelens.prompts.selection import HistoryEntry, SelectionConfig, select_informative
from tastelens.prompts.tokens import TokenCounter, make_token_counter
from tastelens.schemas import Item

TEMPLATES_DIR = Path(__file__).parent / "templates"
ITEM_FORMAT = "item-line-v3"  # bump when item_line() changes: it is part of prompt_version
PROFILE_TEMPLATES = ("profile_system.md", "profile_user.md")
GROUP_TEMPLATES = ("profile_groups_system.md", "profile_groups_user.md")


class RendererConfig(BaseModel):
    """Budget and item formatting of rendered prompts."""

    model_config = ConfigDict(extra="forbid")

    max_prompt_tokens: int = Field(
        default=700, ge=64,
        description="Whole prompt (all messages, chat template included when the counter "
                    "knows it); the reply's max_tokens comes on top. Prompt processing is "
                    "most of a profile's cost on a CPU.")
    max_items: int = Field(default=30, ge=1, description="Most history items shown.")
    tags_per_item: int = Field(default=1, ge=0, description="Leading tags shown per item.")
    max_title_chars: int = Field(default=120, ge=8, description="Longer titles are cut.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig)


@dataclass(frozen=True)
class RenderedPrompt:
    """Chat messages plus what is needed to read the reply and to audit the budget."""

    messages: list[dict[str, str]]
    id_map: dict[str, str]
    """Short prompt id ("h3") -> real item id."""
    prompt_tokens: int
    token_counter: str
    n_history: int
    n_shown: int
    prompt_version: str
    shown_positions: list[int] = field(default_factory=list)
    """Positions (in the full chronological history) of the items shown."""


def json_data(value: object) -> str:
    """JSON text that cannot break out of an angle-bracket-delimited block or a line."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def plain_words(text: str, max_chars: int = 40) -> str:
    """``text`` with every character but letters, digits, spaces and ``-&'`` removed, for
    catalog words shown unquoted (a category cannot break a line or look like JSON)."""
    kept = "".join(ch if ch.isalnum() or ch in " -&'" else " " for ch in text[:max_chars])
    return " ".join(kept.split())


def item_text(item: Item, max_title_chars: int = 100) -> str:
    """``"Heat (1995)" genres "Action, Crime"``: one item as quoted, escaped data, the way
    the ranking and explanation prompts show it (no tags, no short id)."""
    title = item.title[:max_title_chars]
    parts = [json_data(title)]
    if item.year and str(item.year) not in title:
        parts.append(f"year {int(item.year)}")
    if item.categories:
        parts.append("genres " + json_data(", ".join(item.categories)))
    return " ".join(parts)


class PromptRenderer:
    """Renders prompts from the template files, counting tokens with ``token_counter``.

    Pass ``tokenizer_path`` (a local checkpoint folder) for exact counts with the model's
    tokenizer, or a ready ``token_counter``; with neither, :func:`make_token_counter` falls
    back to a cached tiktoken encoding or a named characters-per-token estimate.
    """

    def __init__(self, config: RendererConfig | None = None, *,
                 tokenizer_path: Path | None = None,
                 token_counter: TokenCounter | None = None,
                 templates_dir: Path | None = None) -> None:
        self.config = config or RendererConfig()
        self.counter = token_counter or make_token_counter(tokenizer_path)
        self.templates_dir = Path(templates_dir) if templates_dir else TEMPLATES_DIR
        self._templates = {name: self._read(name)
                           for name in (*PROFILE_TEMPLATES, *GROUP_TEMPLATES)}
        digest = hashlib.sha256(ITEM_FORMAT.encode())
        for name in sorted(self._templates):
            digest.update(f"\0{name}\0{self._templates[name]}".encode())
        self.prompt_version = f"profile-{digest.hexdigest()[:12]}"

    def _read(self, name: str) -> str:
        path = self.templates_dir / name
        if not path.is_file():
            raise ConfigError(f"prompt template {path} is missing")
        return path.read_text(encoding="utf-8").strip()

    def item_line(self, short_id: str, entry: HistoryEntry) -> str:
        """One history item on one line: ``h3 "Heat (1995)" Action/Crime tag "heist" rated 5``.

        Titles and tags are JSON strings (quoted and escaped); categories are reduced to
        letters, digits, spaces and ``-&'`` (:func:`plain_words`). About 16 tokens an item
        with the SmolLM2 tokenizer, half the v2 line with named, quoted fields.
        """
        item = entry.item
        title = item.title[: self.config.max_title_chars]
        parts = [short_id, json_data(title)]
        if item.year and str(item.year) not in title:
            parts.append(str(int(item.year)))
        categories = [c for c in (plain_words(c) for c in item.categories) if c]
        if categories:
            parts.append("/".join(categories))
        tags = [t[:40] for t in item.tags[: self.config.tags_per_item]]
        if tags:
            parts.append("tag " + json_data(", ".join(tags)))
        if entry.rating is not None:
            parts.append(f"rated {entry.rating:g}")
        return " ".join(parts)

    def _messages(self, history: str, values: Mapping[str, str]) -> list[dict[str, str]]:
        # The system message may name only what is the same for every user of a catalog
        # (its rating scale), so the server's prefix cache serves it.
        values = {"rating_scale": "rating", **values, "history": history}
        rendered = {}
        for name in ("profile_system.md", "profile_user.md"):
            try:
                rendered[name] = Template(self._templates[name]).substitute(values)
            except (KeyError, ValueError) as exc:
                raise ConfigError(
                    f"template {self.templates_dir / name} needs placeholder {exc} that the "
                    "profiler does not supply") from exc
        return [{"role": "system", "content": rendered["profile_system.md"]},
                {"role": "user", "content": rendered["profile_user.md"]}]

    def render_groups(self, liked: Sequence[str], disliked: Sequence[str],
                      context: Mapping[str, str]) -> RenderedPrompt:
        """The grouped profile prompt (agent/profile/groups.py): one line per group, liked
        ones then, after "Disliked:", the others. Trailing groups are left out until the
        prompt fits ``max_prompt_tokens`` (``n_shown`` says how many stayed)."""
        liked, disliked = list(liked), list(disliked)
        while True:
            body = "\n".join(liked + (["Disliked:", *disliked] if disliked else []))
            values = {"rating_scale": "rating", **context, "groups": body}
            rendered = {}
            for name in GROUP_TEMPLATES:
                try:
                    rendered[name] = Template(self._templates[name]).substitute(values)
                except (KeyError, ValueError) as exc:
                    raise ConfigError(
                        f"template {self.templates_dir / name} needs placeholder {exc} that "
                        "the profiler does not supply") from exc
            messages = [{"role": "system", "content": rendered[GROUP_TEMPLATES[0]]},
                        {"role": "user", "content": rendered[GROUP_TEMPLATES[1]]}]
            tokens = self.counter.count_messages(messages)
            if tokens <= self.config.max_prompt_tokens or len(liked) + len(disliked) <= 1:
                return RenderedPrompt(
                    messages=messages, id_map={}, prompt_tokens=tokens,
                    token_counter=self.counter.name,
                    n_history=int(context.get("n_total", 0) or 0),
                    n_shown=len(liked) + len(disliked), prompt_version=self.prompt_version)
            if disliked:
                disliked.pop()
            else:
                liked.pop()

    def render_profile(self, entries: Sequence[HistoryEntry],
                       context: Mapping[str, str] | None = None) -> RenderedPrompt:
        """The profile prompt for a chronological history.

        ``context`` fills the template's other placeholders (``top_categories``,
        ``recent_trend``); they are computed facts, never raw item text.
        """
        if not entries:
            raise ConfigError("cannot render a profile prompt for an empty history")
        cfg = self.config
        limit = min(len(entries), cfg.max_items)
        values = {**(context or {}), "n_total": str(len(entries)), "n_shown": str(limit)}
        fixed = self.counter.count_messages(self._messages("", values))
        budget = cfg.max_prompt_tokens - fixed
        widest = f"h{limit}"  # cost items with the longest short id they can get

        def cost(i: int) -> int:
            return self.counter.count(self.item_line(widest, entries[i]) + "\n")

        chosen = select_informative(entries, cost, budget, cfg.selection, max_items=limit)
        if not chosen:
            raise ConfigError(
                f"max_prompt_tokens={cfg.max_prompt_tokens} leaves no room for a single "
                f"history item (the fixed prompt takes {fixed} tokens by "
                f"{self.counter.name}); raise it")
        while True:
            rendered = self._render_chosen(entries, chosen, values)
            if rendered.prompt_tokens <= cfg.max_prompt_tokens or len(chosen) == 1:
                return rendered
            # Per-line costs are summed; the real tokenizer can merge across line breaks
            # differently. Drop the oldest shown item until the whole prompt fits.
            chosen = chosen[1:]

    def _render_chosen(self, entries: Sequence[HistoryEntry], chosen: list[int],
                       values: Mapping[str, str]) -> RenderedPrompt:
        id_map: dict[str, str] = {}
        lines = []
        for k, i in enumerate(chosen, start=1):
            short = f"h{k}"
            id_map[short] = entries[i].item.id
            lines.append(self.item_line(short, entries[i]))
        messages = self._messages("\n".join(lines), {**values, "n_shown": str(len(chosen))})
        return RenderedPrompt(
            messages=messages, id_map=id_map,
            prompt_tokens=self.counter.count_messages(messages),
            token_counter=self.counter.name, n_history=len(entries), n_shown=len(chosen),
            prompt_version=self.prompt_version, shown_positions=list(chosen))
