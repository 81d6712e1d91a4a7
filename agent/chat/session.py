"""A recommendation chat with memory: :class:`ChatSession`.

Each message is read into a :class:`~tastelens.agent.chat.intent.ChatIntent` and applied to
the session's state. The rules read it first; when they are sure (``ChatIntent.sure``: 'why
the second?', 'more', 'reset', 'no horror', 'like Heat', 'more recent ones') that is the
reading, and no LLM request is sent. Only a message the rules are not sure of is read by the
LLM too, waiting at most ``ChatConfig.intent_deadline_s``, and its reading is merged
conservatively (:func:`~tastelens.agent.chat.reader.merge_intents`); a late, invalid or
missing reply leaves the rules' reading. ``ChatSession.stats`` counts which path read each
message (rules / llm / llm-failed), and each turn's :class:`TurnReport` says it too.

A turn then costs at most one pipeline call (one retrieval, at most one re-rank request,
explanations made in the same pass); "why …?" answers from the last list's explanations.

- constraints accumulate across turns: "like Heat but funnier", then "no horror" keeps the
  seed and the comedy filter; a newly named seed replaces the old one; "reset" clears all;
- "show me more" asks the pipeline again with every item already shown excluded;
- "why the second one?" answers from the last list's :class:`Explanation` (grounded in the
  user's history by the pipeline), without a new retrieval;
- a session without a user (a new visitor) turns what they state ("I love 90s Disney
  musicals") into an :class:`~tastelens.schemas.InterestProfile` (interests from the phrases,
  categories from the genres named, no evidence) and asks the pipeline with an empty history.

With ``ChatConfig.mode = "tools"`` (a model that can call tools) the same operations are
LangChain tools driven by an agent: see :mod:`tastelens.agent.chat.tools`.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tastelens.agent.chat.catalog import CatalogVocabulary, vocabulary_for
from tastelens.agent.chat.intent import ChatIntent, RuleParser
from tastelens.agent.chat.mentions import find_mentions
from tastelens.agent.chat.reader import IntentReader, merge_intents
from tastelens.agent.chat.reply import (
    HELP,
    STARTER,
    ChatStats,
    ChatTurn,
    ReadPath,
    TurnKind,
    TurnReport,
    describe,
    explain_text,
)
from tastelens.agent.chat.tools import ToolChatAgent, chat_model_from_settings
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.stated import with_stated
from tastelens.agent.recommendation import Constraints, RecommendationList, Recommends
from tastelens.config.chat import ChatConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.llm.base import LLMBackend
from tastelens.llm.errors import LLMUnavailableError
from tastelens.schemas import Interest, InterestProfile

if TYPE_CHECKING:
    from tastelens.config.settings import Settings


class ChatSession:
    """One conversation. Not shared between users; thread-safe for one user's requests."""

    def __init__(self, pipeline: Recommends, *, llm: LLMBackend | None = None,
                 dataset: Dataset, user: str | None = None, config: ChatConfig | None = None,
                 chat_model: Any = None, vocab: CatalogVocabulary | None = None) -> None:
        self.pipeline = pipeline
        self.dataset = dataset
        self.user = user
        self.config = config or ChatConfig()
        self.vocab = vocab or vocabulary_for(dataset)
        self.parser = RuleParser(self.vocab, config=self.config)
        self.reader = (IntentReader(llm, self.vocab, max_tokens=self.config.intent_max_tokens,
                                    adapter=self.config.adapter)
                       if llm is not None and self.config.use_llm else None)
        self.llm_down = False
        self.stats = ChatStats()
        self.constraints = Constraints()
        self.likes: list[str] = []
        self.liked: list[str] = []
        """Items the person named with liking (or no feeling stated), oldest first: a
        visitor's history."""
        self.disliked: list[str] = []
        """Items the person named with a negative cue: excluded and pushed away."""
        self.named: list[str] = []
        """Every item the person named: never recommended back."""
        self.avoided: list[str] = []
        """Described words said in a negative clause ('nothing too crude'): a visitor's
        dislikes."""
        self.last: RecommendationList | None = None
        self.shown: list[str] = []
        self.offered: list[str] = []
        """Items another recommender named to the user (:meth:`observe`)."""
        self._lock = threading.Lock()
        self._agent: ToolChatAgent | None = None
        if self.config.mode == "tools":
            if chat_model is None:
                raise ConfigError("chat mode 'tools' needs a tool-calling chat model: pass "
                                  "chat_model= or build the session with from_settings()")
            self._agent = ToolChatAgent(self, chat_model)

    @classmethod
    def from_settings(cls, settings: Settings, dataset: Dataset, *, user: str | None = None,
                      llm: LLMBackend | None = None, pipeline: Recommends | None = None,
                      config: ChatConfig | None = None) -> ChatSession:
        """A session on the configured pipeline (and, in 'tools' mode, a ChatOpenAI model at
        the configured server)."""
        config = config or ChatConfig()
        if pipeline is None:
            pipeline = RecommendPipeline.from_settings(settings, dataset, llm=llm)
        chat_model = chat_model_from_settings(settings) if config.mode == "tools" else None
        return cls(pipeline, llm=llm, dataset=dataset, user=user, config=config,
                   chat_model=chat_model)

    # -- one turn ------------------------------------------------------------------------
    def respond(self, message: str) -> ChatTurn:
        """Read ``message``, update the session and answer it."""
        started = time.perf_counter()
        with self._lock:
            if self._agent is not None:
                turn = self._agent.respond(message)
                self.stats.count(turn.report.path)
            else:
                intent, asked = self._read(message)
                read_s = time.perf_counter() - started
                turn = self.apply(intent)
                turn.report.path = _path(intent)
                turn.report.read_seconds = round(read_s, 4)
                turn.report.intent_requests = asked
                self.stats.count(turn.report.path)
        turn.seconds = round(time.perf_counter() - started, 4)
        return turn

    def read(self, message: str) -> ChatIntent:
        """The rules' reading; for a message they are not sure of, merged with the LLM's
        reading when an LLM is configured and up (see the module docstring)."""
        return self._read(message)[0]

    def _read(self, message: str) -> tuple[ChatIntent, int]:
        """:meth:`read`, and how many LLM requests it made (the retry counts; one cut off
        by the deadline too)."""
        rules = self.parser.parse(message, [r.item for r in self.last.items] if self.last
                                  else [])
        if rules.sure or self.reader is None:
            return rules, 0
        if self.llm_down:
            return rules.model_copy(update={"llm": "unavailable"}), 0
        shown = [r.title for r in self.last.items] if self.last else []
        try:
            outcome = self.reader.read_within(message, shown, self.config.intent_deadline_s)
        except LLMUnavailableError:
            self.llm_down = True  # rules only for the rest of the session: no waiting per turn
            return rules.model_copy(update={"llm": "unavailable"}), 1
        if outcome.value is None:
            slow = outcome.failure in ("timeout", "deadline")
            return (rules.model_copy(update={"llm": "timeout" if slow else "invalid"}),
                    outcome.attempts)
        return merge_intents(rules, outcome.value, self.vocab, message), outcome.attempts

    def apply(self, intent: ChatIntent) -> ChatTurn:
        """Carry out an intent (from :meth:`read`, or from a tool call)."""
        if intent.action == "reset":
            self.constraints, self.likes, self.last, self.shown = Constraints(), [], None, []
            self.liked, self.disliked, self.named, self.offered = [], [], [], []
            self.avoided = []
            return self._turn("Starting over: everything you asked for is cleared. " + HELP,
                              intent, kind="reset")
        if intent.action == "smalltalk":
            if self.last is None and (self.user is not None or not self._stated()):
                return self._starter(intent)
            return self._turn(HELP, intent, kind="smalltalk")
        if intent.action == "explain":
            return self._turn(explain_text(self.last, intent, self.dataset), intent,
                              kind="why")
        if intent.action == "more" and self.last is not None:
            constraints = self.constraints.model_copy(update={"exclude_items": list(self.shown)})
            result = self._ask(constraints)
            self.shown += [r.item for r in result.items if r.item not in self.shown]
            self.shown = self.shown[-self.config.max_shown:]  # bounded: the newest are kept
            self.constraints = constraints
            text = describe(result, constraints, self.dataset, self.likes, more=True)
            return self._turn(text, intent, result, kind="more")
        # a change to the request on screen, or a new one (the first, or a new seed)
        new_items = [i for i in intent.liked_items + intent.seed_items if i not in self.liked]
        kind: TurnKind = "refine" if self.last is not None and not new_items else "recommend"
        self.remember(intent)
        self.constraints = self.accumulate(intent)
        if self.user is None and not self._stated():
            return self._starter(intent)  # read nothing to recommend from: well-liked picks
        result = self._ask(self.constraints)
        self.shown = [r.item for r in result.items]
        return self._turn(describe(result, self.constraints, self.dataset, self.likes,
                                   liked=self._liked_titles()), intent, result, kind=kind)

    def _starter(self, intent: ChatIntent) -> ChatTurn:
        """A first message with nothing to recommend from: a dataset user gets picks from
        their history; a new visitor is asked what they like and shown widely watched picks
        meanwhile (labelled as such: the popularity prior alone)."""
        result = self._ask(self.constraints)
        self.shown = [r.item for r in result.items]
        if not result.items:
            text = "Tell me a little about what you like first. "
        else:
            text = STARTER if self.user is None else "Here are picks from your history. "
        return self._turn(text + HELP, intent, result if result.items else None,
                          kind="smalltalk")

    def _stated(self) -> bool:
        """Whether the person has told us anything to recommend from."""
        return bool(self.liked or self.disliked or self.likes or self.avoided
                    or not self.constraints.model_copy(update={"exclude_items": []}).is_empty())

    def _liked_titles(self) -> list[str]:
        if self.user is not None:
            return []
        return [self.dataset.items[i].title for i in self.liked if i in self.dataset.items]

    def observe(self, message: str) -> ChatTurn:
        """Record a message said to the user by someone else in this conversation (a human
        recommender's turn, when a conversation is imported or replayed): the catalog titles
        it names count as shown to the user, so they are never recommended back. No list is
        made and nothing is asked of the pipeline or the LLM."""
        started = time.perf_counter()
        with self._lock:
            named = [m.item for m in find_mentions(message, self.vocab)]
            self.offered += [i for i in named if i not in self.offered]
            self.shown += [i for i in named if i not in self.shown]
        turn = ChatTurn(text="", intent=ChatIntent(action="smalltalk", sure=True),
                        constraints=self.constraints.model_copy(deep=True),
                        report=TurnReport(kind="observed"))
        turn.seconds = round(time.perf_counter() - started, 4)
        return turn

    # -- state ---------------------------------------------------------------------------
    def remember(self, intent: ChatIntent) -> None:
        """Record the items the message named: liked ones join the person's history (a
        visitor's) unless later disliked, and the other way round; all are never
        recommended back."""
        for item in intent.named_items:
            if item not in self.named:
                self.named.append(item)
        for item in intent.liked_items:
            if item in self.disliked:
                self.disliked.remove(item)
            if item not in self.liked:
                self.liked.append(item)
        for item in intent.disliked_items:
            if item in self.liked:
                self.liked.remove(item)
            if item not in self.disliked:
                self.disliked.append(item)
        for word in intent.avoid:
            if word not in self.avoided:
                self.avoided.append(word)
        cap = self.config.max_named
        self.liked, self.disliked = self.liked[-cap:], self.disliked[-cap:]
        self.avoided = self.avoided[-cap:]
        self.named = self.named[-4 * cap:]

    def accumulate(self, intent: ChatIntent) -> Constraints:
        """The session's constraints with this intent's applied (not stored)."""
        c = self.constraints.model_copy(deep=True)
        c.exclude_items = []  # a changed request may show earlier items again
        if intent.seed_items:
            c.seed_items = list(intent.seed_items)
        elif intent.liked_items:  # "Heat (1995) was great": what the answer should resemble
            c.seed_items = list(intent.liked_items[-self.config.max_seeds:])
        for cat in intent.include_categories:
            c.exclude_categories = [x for x in c.exclude_categories if x != cat]
            c.include_categories += [cat] if cat not in c.include_categories else []
        for cat in intent.exclude_categories:
            c.include_categories = [x for x in c.include_categories if x != cat]
            c.exclude_categories += [cat] if cat not in c.exclude_categories else []
        if intent.year_min is not None:
            c.year_min = intent.year_min
        if intent.year_max is not None:
            c.year_max = intent.year_max
        if intent.recency is not None:
            self._apply_recency(c, intent.recency)
        if c.year_min is not None and c.year_max is not None and c.year_min > c.year_max:
            if intent.year_min is not None or intent.recency == "newer":
                c.year_max = None
            else:
                c.year_min = None
        for like in intent.likes:
            like = like[:self.config.max_like_chars]
            if like not in self.likes:
                self.likes.append(like)
        self.likes = self.likes[-self.config.max_likes:]  # bounded: the newest are kept
        asks = intent.wishes + (intent.likes if self.user is not None else [])
        queries = [q for q in c.queries if q not in asks] + list(dict.fromkeys(asks))
        c.queries = queries[-self.config.max_queries:] if self.config.max_queries else []
        return c

    def _apply_recency(self, c: Constraints, recency: str) -> None:
        years = sorted(self.dataset.items[r.item].year or 0 for r in self.last.items
                       if self.dataset.items[r.item].year) if self.last else []
        newest = self.vocab.max_year or datetime.now(timezone.utc).year
        median = years[len(years) // 2] if years else None
        if recency == "newer":
            base = median if median is not None else newest - self.config.recent_years
            c.year_min = min(max(base + 1, c.year_min or 0), newest)
        else:
            base = median if median is not None else newest - self.config.older_years
            c.year_max = base - 1 if c.year_max is None else min(c.year_max, base - 1)

    def profile(self) -> InterestProfile | None:
        """For a session without a user: their taste as they told it — the data facts of the
        films they named with liking, what they asked for (categories), their stated likes
        and their dislikes (films named with a negative cue, excluded categories). None for
        a dataset user: the pipeline uses their own."""
        if self.user is not None:
            return None
        items = self.dataset.items
        dislikes = [Interest(label=items[i].title[:80], granularity="topic", weight=1.0,
                             polarity="dislike", evidence=[i], source="user")
                    for i in reversed(self.disliked) if i in items]
        dislikes += [Interest(label=c, granularity="topic", weight=1.0, polarity="dislike",
                              evidence=[], source="user")
                     for c in self.constraints.exclude_categories]
        dislikes += [Interest(label=w[:80], granularity="keyword", weight=1.0,
                              polarity="dislike", evidence=[], source="user")
                     for w in reversed(self.avoided)]
        profile = with_stated(self.pipeline.history_profile(list(self.liked)),
                              self.constraints.include_categories,
                              likes=list(reversed(self.likes[-8:])), dislikes=dislikes)
        if self.likes:
            profile = profile.model_copy(update={
                "summary": "Stated in chat: " + "; ".join(self.likes)})
        return profile

    def _ask(self, constraints: Constraints) -> RecommendationList:
        anonymous = self.user is None
        never = [i for i in dict.fromkeys(self.named + self.offered)
                 if i not in constraints.exclude_items]
        if never:
            constraints = constraints.model_copy(update={
                "exclude_items": [*constraints.exclude_items, *never]})
        return self.pipeline.recommend(self.user, k=self.config.k, constraints=constraints,
                                       profile=self.profile() if anonymous else None,
                                       history=list(self.liked) if anonymous else None)

    def _turn(self, text: str, intent: ChatIntent, result: RecommendationList | None = None,
              *, kind: TurnKind) -> ChatTurn:
        if result is not None:
            self.last = result
        return ChatTurn(text=text, recommendations=result, intent=intent,
                        constraints=self.constraints.model_copy(deep=True),
                        report=TurnReport(kind=kind))


def _path(intent: ChatIntent) -> ReadPath:
    """Which path read a message, from what its intent says of the LLM."""
    if intent.llm == "ok":
        return "llm"
    return "rules" if intent.llm == "off" else "llm-failed"
