"""One chat message -> a :class:`ChatIntent`, by deterministic rules over the catalog.

The default model (SmolLM2-135M) cannot call tools freely, so each turn is parsed into a
small typed intent. :class:`RuleParser` does it without a model, on whole tokens:

- seeds: a catalog title after a similarity cue ("like Heat", "similar to Toy Story") or a
  preference verb ("I loved Heat"); exact normalised titles first (longest span wins), then a
  difflib match of the span;
- genres: words and synonyms mapped to catalog categories ("funnier" -> Comedy); a negation
  cue ("no", "not", "without", "avoid", "hate") turns the following genre words into
  exclusions ("no horror or thrillers");
- years: decades ("90s"), "before/after/since 1995", and "more recent"/"older" flags that the
  session resolves against the previous list or the catalog's newest year;
- the item asked about: ordinals ("the second one", "#3", "the last one") or a title of the
  last list ("why Toy Story?");
- stated likes ("I love 90s Disney musicals") and wishes ("but funnier") as free text.

The parser also says when it is **sure** (``ChatIntent.sure``): 'why …?', 'more', 'reset' and
plain greetings always; a request when every word is accounted for — a catalog title, a genre
word, a year expression, a cue, filler, or part of a like or wish a cue introduced ("no
horror", "like Heat but funnier", "more recent ones", "Heat"). Only the other messages (free
text the rules kept whole, words no rule read) are worth the LLM's reading
(:mod:`tastelens.agent.chat.reader`), which is merged into this one conservatively.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.chat.catalog import TITLE_STOPWORDS, CatalogVocabulary, tokens
from tastelens.agent.chat.mentions import clause_feelings, find_mentions
from tastelens.config.chat import ChatConfig
from tastelens.data.descriptors import FUNCTION_WORDS, REQUEST_WORDS

Action = Literal["recommend", "explain", "more", "reset", "smalltalk"]
MAX_NAMED = 16
"""Most "Title (Year)" mentions read from one message (the rest of it is not searched)."""


class ChatIntent(BaseModel):
    """What one message asks for. Hard constraints come from the rules; see ``source``."""

    model_config = ConfigDict(extra="forbid")

    action: Action = "recommend"
    seed_items: list[str] = Field(default_factory=list,
                                  description="Catalog ids of the titles named ('like Heat').")
    seed_titles: list[str] = Field(default_factory=list, description="Their catalog titles.")
    liked_items: list[str] = Field(
        default_factory=list, description="Catalog ids the message names with liking, or with "
                                          "no feeling stated ('Heat (1995)'): the visitor's "
                                          "history.")
    disliked_items: list[str] = Field(
        default_factory=list, description="Catalog ids named with a negative cue ('Heat (1995) "
                                          "was boring').")
    named_items: list[str] = Field(
        default_factory=list, description="Every catalog id the message names, whatever the "
                                          "feeling (never recommended back).")
    include_categories: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    recency: Literal["newer", "older"] | None = Field(
        default=None, description="'more recent ones' / 'older': resolved by the session "
                                  "against the last list (or the catalog's newest year).")
    likes: list[str] = Field(default_factory=list,
                             description="Stated preferences ('90s Disney musicals').")
    wishes: list[str] = Field(default_factory=list,
                              description="Free-text refinements ('funnier').")
    avoid: list[str] = Field(default_factory=list,
                             description="Described words said in a negative or negated "
                                         "clause ('nothing too crude'): pushed away.")
    about_rank: int | None = Field(default=None, description="1-based rank in the last list "
                                                             "asked about; -1 = the last one.")
    about_item: str | None = Field(default=None, description="Catalog id asked about by title.")
    source: Literal["rules", "rules+llm", "tools"] = "rules"
    llm: Literal["off", "ok", "invalid", "timeout", "unavailable"] = Field(
        default="off", description="What the LLM reading of this message gave: 'invalid': a "
                                   "reply that did not parse; 'timeout': no reply in time; "
                                   "'unavailable': no server (or its circuit breaker is "
                                   "open).")
    llm_dropped: int = Field(default=0, description="LLM proposals dropped (not in the "
                                                    "catalog, not in the message, or overruled).")
    sure: bool = Field(default=False, description="The rules read the whole message (an "
                                                  "explicit action, or every word a title, "
                                                  "genre, year, cue or stated like): no LLM "
                                                  "reading is asked for.")

    def has_constraints(self) -> bool:
        return bool(self.seed_items or self.include_categories or self.exclude_categories
                    or self.year_min or self.year_max or self.recency or self.likes
                    or self.wishes or self.liked_items or self.disliked_items or self.avoid)


RESET = {"reset", "start over", "start again", "restart", "clear", "forget it",
         "forget everything", "new search", "reset please", "let's start over"}
MORE = {"more", "show me more", "more please", "next", "another", "others", "some more",
        "give me more", "more of those", "more like these", "next page", "show more",
        "any more", "anything else", "what else", "other ones", "more options"}
SMALLTALK = {"hi", "hello", "hey", "thanks", "thank", "you", "ok", "okay", "cool", "great",
             "bye", "goodbye", "nice", "good", "morning", "evening", "yo", "sup", "there",
             "hmm", "yes", "no", "sure", "awesome", "perfect", "much", "lol"}
FILLER = {"a", "an", "the", "some", "something", "anything", "movie", "movies", "film",
          "films", "one", "ones", "please", "me", "show", "give", "find", "want", "i",
          "really", "very", "kind", "of", "sort", "stuff", "to", "watch", "for", "that",
          "is", "are", "be", "more", "bit", "little", "lot", "much", "maybe", "just", "too",
          "and", "or", "also", "again", "now", "tonight", "good", "great", "like", "what",
          "what's", "whats", "which", "got", "have", "has", "you", "your", "my", "we", "us",
          "recommend", "recommendation", "recommendations", "suggest", "suggestion",
          "suggestions", "can", "could", "should", "would", "do", "does", "there", "here",
          "it", "it's", "its", "else", "any", "new", "ideas", "idea", "options", "see"}
NEGATION = {"no", "not", "without", "nothing", "avoid", "except", "skip", "hate", "dislike",
            "don't", "dont", "never", "exclude", "excluding", "none", "less"}
SIMILAR_CUES = (("similar", "to"), ("such", "as"), ("in", "the", "vein", "of"),
                ("in", "the", "style", "of"), ("along", "the", "lines", "of"),
                ("reminds", "me", "of"), ("same", "as"), ("like",))
LIKE_SUBJECTS = {"i", "we", "i'd", "we'd", "would", "you", "really", "also", "do", "don't",
                 "dont", "they", "kids", "wife", "husband"}
PREFERENCE_CUES = (("i", "love"), ("i", "loved"), ("i", "like"), ("i", "liked"), ("i", "enjoy"),
                   ("i", "enjoyed"), ("i", "adore"), ("i'm", "into"), ("i", "am", "into"),
                   ("im", "into"), ("fan", "of"), ("in", "the", "mood", "for"),
                   ("looking", "for"), ("i", "really", "like"), ("i", "really", "love"),
                   ("we", "love"), ("we", "like"))
AVERSION_CUES = (("i", "hate"), ("i", "hated"), ("i", "dislike"), ("i", "disliked"),
                 ("i", "didn't", "like"), ("i", "didnt", "like"), ("i", "did", "not", "like"),
                 ("i", "don't", "like"), ("i", "dont", "like"), ("not", "a", "fan", "of"),
                 ("i", "couldn't", "stand"), ("i", "can't", "stand"), ("i", "cant", "stand"))
WISH_CUES = (("but",), ("though",), ("with",), ("about",), ("featuring",), ("starring",),
             ("set", "in"))
HARD_BOUNDARY = {"but", "though", "although", "yet", "please", "except", "without", "no",
                 "not", "nothing", "instead", "also"}
SPAN_BOUNDARY = HARD_BOUNDARY | {"with", "and", "or", "only", "just", "from", "made",
                                 "released", "that", "which", "who", "more", "less", "before",
                                 "after", "since", "until", "ones", "about", "set", "in"}
WISH_BOUNDARY = HARD_BOUNDARY | {"and", "with", "from", "before", "after", "since", "until",
                                 "made", "released"}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "top": 1, "last": -1}
NEWER = {"recent", "newer", "newest", "latest", "modern", "new ones", "new releases",
         "more recent", "contemporary"}
OLDER = {"older", "oldest", "old ones", "classic", "classics", "vintage", "oldies",
         "old school", "old-school"}
SUBGENRE_WORDS = {"heist", "heists", "gangster", "gangsters", "mafia", "mob", "slasher",
                  "detective", "whodunit", "aliens", "space", "cowboy", "cowboys", "anime",
                  "superhero", "zombie", "zombies"}

ASKS = frozenset({"recommend", "recommendation", "recommendations", "suggest", "suggestion",
                  "suggestions", "something", "anything", "ideas", "idea"})
"""Words that ask for items ('something fun', 'any suggestions?')."""
CONTENTLESS = frozenset(FUNCTION_WORDS | REQUEST_WORDS | FILLER | SMALLTALK | TITLE_STOPWORDS
                        | {"recent", "new", "old"}
                        | {w for phrase in NEWER | OLDER for w in phrase.split()})
"""Words that say nothing about what an item should be: a phrase of only these is never
kept as free text."""

# Words that carry no request of their own beyond what the rules read around them.
READ_WORDS = frozenset(
    FILLER | NEGATION | SMALLTALK | HARD_BOUNDARY | SPAN_BOUNDARY | WISH_BOUNDARY
    | {w for cue in SIMILAR_CUES + PREFERENCE_CUES + WISH_CUES for w in cue}
    | {w for phrase in NEWER | OLDER for w in phrase.split()}
    | {"recent", "new", "old", "made", "released", "year", "years", "decade", "era"})

_DECADE = re.compile(r"\b(?:(19|20)(\d)0|'?(\d)0)'?s\b")
_BEFORE = re.compile(r"\b(before|until|up to|pre|prior to|no later than)[- ]((?:1[89]|20)\d\d)\b")
_AFTER = re.compile(r"\b(after|since|from|post|newer than|later than)[- ]((?:1[89]|20)\d\d)\b")
_IN_YEAR = re.compile(r"\b(?:in|of) ((?:1[89]|20)\d\d)\b")
_ORD_NUM = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b|(?:number|no|#) ?(\d{1,2})\b")


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def _starts(toks: Sequence[str], i: int, cue: tuple[str, ...]) -> bool:
    return tuple(toks[i:i + len(cue)]) == cue


def _phrase(words: Sequence[str]) -> str:
    """A span without leading/trailing filler words; '' when only filler is left."""
    words = list(words)
    while words and words[0] in FILLER:
        words.pop(0)
    while words and words[-1] in FILLER:
        words.pop()
    return " ".join(words)


def _as_written(message: str, phrase: str) -> str:
    """``phrase`` (lower-cased tokens) with the message's own casing ("90s Disney musicals")."""
    words = [re.escape(w) for w in phrase.split()]
    found = re.search(r"[\W_]+".join(words), message, flags=re.IGNORECASE) if words else None
    return " ".join(found.group(0).split()) if found else phrase


class RuleParser:
    """Deterministic message -> :class:`ChatIntent` for one catalog."""

    def __init__(self, vocab: CatalogVocabulary, *, title_cutoff: float | None = None,
                 config: ChatConfig | None = None) -> None:
        """``config``: the bounds on a message's work (None = the defaults); ``title_cutoff``:
        None = the config's."""
        config = config or ChatConfig()
        self.vocab = vocab
        self.title_cutoff = config.title_cutoff if title_cutoff is None else title_cutoff
        self.max_fuzzy_titles = config.max_fuzzy_titles
        self.max_tokens = config.max_message_tokens
        self.max_seeds = config.max_seeds

    def parse(self, message: str, last_items: Sequence[str] = ()) -> ChatIntent:
        """``last_items``: ids of the list shown last, in rank order (for 'the second one')."""
        # Bounded work per message: the rules read the first max_message_tokens words.
        toks = tokens(message)[:self.max_tokens]
        norm = " ".join(toks)
        if not toks:
            return ChatIntent(action="smalltalk")
        if norm in RESET or norm.startswith(("reset", "start over")):
            return ChatIntent(action="reset", sure=True)
        if self._asks_why(toks, norm, last_items):
            return self._explain(toks, norm, last_items)
        intent = ChatIntent()
        message, toks, norm = self._named(message, intent)
        if not toks:  # only titles: "Heat (1995)"
            intent.sure = True
            return intent
        used: set[int] = set()
        self._seeds_and_likes(toks, intent, used)
        self._years(norm, intent)
        feel = clause_feelings(message)
        self._avoid(toks, feel, intent, used)
        self._genres(toks, intent, used, feel)
        self._wishes(toks, intent, used)
        if not intent.has_constraints():
            if norm in MORE or (set(toks) <= {"more", "show", "me", "please", "some", "give",
                                               "next", "another", "any", "one", "ones"}):
                return ChatIntent(action="more", sure=True)
            if set(toks) <= SMALLTALK:
                return ChatIntent(action="smalltalk", sure=True)
            whole = self.vocab.lookup(norm)
            if whole is not None and norm not in TITLE_STOPWORDS:  # just a title: "Heat"
                self._add_seed(intent, whole)
                intent.sure = True
                return intent
            free = self._described(toks)
            if not self._wishful(free):
                # 'something exciting', 'any suggestions?': a request with nothing specific
                # in it asks for a list from what we know already, not for the help text.
                return ChatIntent(action="recommend" if set(toks) & ASKS else "smalltalk")
            intent.wishes.append(free)  # its described words: not sure what it asks for
        else:
            intent.sure = not self.unread(toks, norm, intent, used)
        intent.likes = [_as_written(message, p) for p in intent.likes]
        intent.wishes = [_as_written(message, p) for p in intent.wishes]
        return intent

    def _asks_why(self, toks: Sequence[str], norm: str, last_items: Sequence[str]) -> bool:
        """A question about a list: 'why …?' / 'explain …' / 'how come …' at the start, or
        'why' with a list shown ('and why the second?'). 'not sure why, but I love horror'
        before any list is a request, not a question."""
        if toks[0] in {"why", "explain", "reason", "reasons"} or norm.startswith(
                ("how come", "what makes")):
            return True
        return bool(last_items) and bool({"why", "explain"} & set(toks))

    def _named(self, message: str, intent: ChatIntent) -> tuple[str, list[str], str]:
        """Read the "Title (Year)" mentions into ``intent`` (with their clause's feeling) and
        return the message without them, tokenised: the rest of the rules never read a
        title's words as a genre, a cue or a wish ('Scary Movie (2000)', 'Star Wars
        (1977)')."""
        found = find_mentions(message, self.vocab, max_mentions=MAX_NAMED,
                              contentless=CONTENTLESS)
        for m in found:
            _add(intent.named_items, m.item)
            if m.sentiment == "disliked":
                _add(intent.disliked_items, m.item)
            elif m.sentiment in ("liked", "neutral"):
                _add(intent.liked_items, m.item)
        for m in reversed(found):  # 'it': no cue reads on into the next words as a title
            message = message[:m.start] + " it " + message[m.end:]
        toks = tokens(message)[:self.max_tokens]
        return message, toks, " ".join(toks)

    def unread(self, toks: Sequence[str], norm: str, intent: ChatIntent,
               used: set[int]) -> list[str]:
        """The words of a message that no rule accounted for (see the module docstring);
        ``used``: token positions the seed and cue scans consumed."""
        said = {w for phrase in intent.likes + intent.wishes for w in phrase.split()}
        years = {w for rx in (_DECADE, _BEFORE, _AFTER, _IN_YEAR)
                 for m in rx.finditer(norm) for w in m.group(0).split()}
        left: list[str] = []
        i = 0
        while i < len(toks):
            hit = self.vocab.category_at(toks, i)
            if hit is not None:
                i += hit[1]
                continue
            tok = toks[i]
            if not (i in used or tok in READ_WORDS or tok in said or tok in years):
                left.append(tok)
            i += 1
        return left

    def _wishful(self, phrase: str) -> bool:
        """A phrase worth keeping as free text: not a bare category name, and holding a word
        the catalog's descriptors use (tags, keywords: 'twist', 'zombies', 'heist') — not
        only function words, greetings, filler, pronouns ('like it'), recency words or words
        no item is described by. "what's up", "ya there" and "I heard the northeast got
        slammed" say nothing about films, so they never become a query (a query of such
        words finds titles that happen to hold them)."""
        content = set(phrase.split()) - CONTENTLESS
        return (bool(content) and not self.vocab.is_category_name(phrase)
                and any(self.vocab.describes(w) for w in content))

    def _described(self, words: Sequence[str]) -> str:
        """The words of a free-text span that the catalog describes items by, in order
        ('I heard it has a twist ending lol' -> 'twist ending')."""
        return " ".join(w for w in words if w not in CONTENTLESS and self.vocab.describes(w))

    def _avoid(self, toks: list[str], feel: Sequence[str], intent: ChatIntent,
               used: set[int]) -> None:
        """Described words in a negative or negated clause ("nothing too crude", "I don't
        want violence", "zombies are boring") are things to avoid, never wishes."""
        for i, tok in enumerate(toks):
            if (i < len(feel) and feel[i] and i not in used and tok not in CONTENTLESS
                    and tok not in NEGATION and self.vocab.category_at(toks, i) is None
                    and self.vocab.describes(tok)):
                used.add(i)
                if tok not in intent.avoid:
                    intent.avoid.append(tok)

    # -- parts ------------------------------------------------------------------------------
    def _explain(self, toks: list[str], norm: str, last_items: Sequence[str]) -> ChatIntent:
        intent = ChatIntent(action="explain", sure=True)
        for i, tok in enumerate(toks):
            if tok in ORDINALS and (i + 1 >= len(toks) or toks[i + 1] in {"one", "movie", "film",
                                                                          "pick", "title"}
                                   or (i > 0 and toks[i - 1] == "the")):
                intent.about_rank = ORDINALS[tok]
                return intent
        number = _ORD_NUM.search(norm)
        if number:
            intent.about_rank = int(number.group(1) or number.group(2))
            return intent
        for item in last_items:  # a title of the last list, anywhere in the message
            for key in self.vocab.title_keys_of(item):
                if re.search(rf"\b{re.escape(key)}\b", norm):
                    intent.about_item = item
                    return intent
        for i in range(len(toks)):
            match = self.vocab.title_at(toks, i)
            if match is not None and toks[i] not in {"why", "this", "that", "one"}:
                intent.about_item = match.item
                return intent
        intent.about_rank = 1  # "why this one?": the top of the list
        return intent

    def _seeds_and_likes(self, toks: list[str], intent: ChatIntent, used: set[int]) -> None:
        # Fuzzy (difflib) title look-ups scan the whole catalog each: a few per message.
        fuzzy_left = [self.max_fuzzy_titles]
        i = 0
        while i < len(toks):
            against = next((c for c in AVERSION_CUES if _starts(toks, i, c)), None)
            if against is not None:  # "I hated Heat": a title read as disliked, not a seed
                start = i + len(against)
                end = self._titles_from(toks, start, intent, used, fuzzy=False,
                                        sink=self._add_disliked, fuzzy_left=fuzzy_left)
                if end > start:
                    used.update(range(i, start))
                i = max(end, i + 1)
                continue
            pref = next((c for c in PREFERENCE_CUES if _starts(toks, i, c)), None)
            similar = next((c for c in SIMILAR_CUES if _starts(toks, i, c)), None)
            if similar == ("like",) and i > 0 and toks[i - 1] in LIKE_SUBJECTS:
                similar = None  # "I'd like something funny": a verb, not "similar to"
            cue = pref or similar
            if cue is None:
                i += 1
                continue
            start = i + len(cue)
            used.update(range(i, start))
            end = self._titles_from(toks, start, intent, used, fuzzy=similar is not None,
                                    sink=self._add_seed, fuzzy_left=fuzzy_left)
            if end == start:  # no title: the span is a stated like / a wish
                stop = start
                bounds = HARD_BOUNDARY if pref else SPAN_BOUNDARY
                while stop < len(toks) and toks[stop] not in bounds:
                    stop += 1
                phrase = _phrase(toks[start:stop])
                if self._wishful(phrase):
                    (intent.likes if pref else intent.wishes).append(phrase)
                # genre words inside a like stay visible to the genre scan
                end = stop
            i = max(end, i + 1)

    def _titles_from(self, toks: list[str], start: int, intent: ChatIntent, used: set[int],
                     *, fuzzy: bool, sink: Callable[[ChatIntent, str], None],
                     fuzzy_left: list[int]) -> int:
        """Titles named from ``start`` on ("Heat and Ronin"), each handed to ``sink``;
        returns where they end. ``fuzzy_left``: the message's remaining fuzzy look-ups (one
        is spent per try)."""
        pos = start
        while pos < len(toks):
            skip = pos + 1 if toks[pos] in {"the", "a", "an"} and pos == start else pos
            match = self.vocab.title_at(toks, pos) or self.vocab.title_at(toks, skip)
            stop = pos
            while stop < len(toks) and toks[stop] not in SPAN_BOUNDARY:
                stop += 1
            if fuzzy and pos == start and (match is None or match.end < stop) \
                    and fuzzy_left[0] > 0:
                # "like Toy Stroy": the whole span, misspelt, beats the exact "Toy" inside it
                fuzzy_left[0] -= 1
                item = self.vocab.match_title(" ".join(toks[pos:stop]), cutoff=self.title_cutoff)
                if item is not None:
                    sink(intent, item)
                    used.update(range(pos, stop))
                    return stop
            if match is None:
                break
            sink(intent, match.item)
            used.update(range(pos, match.end))
            pos = match.end
            if pos + 1 < len(toks) and toks[pos] in {"and", "or"}:
                nxt = self.vocab.title_at(toks, pos + 1)
                if nxt is not None:
                    used.add(pos)
                    pos += 1
                    continue
            break
        return pos

    def _add_disliked(self, intent: ChatIntent, item: str) -> None:
        _add(intent.named_items, item)
        _add(intent.disliked_items, item)
        if item in intent.liked_items:
            intent.liked_items.remove(item)

    def _add_seed(self, intent: ChatIntent, item: str) -> None:
        if item not in intent.seed_items and len(intent.seed_items) < self.max_seeds:
            intent.seed_items.append(item)
            intent.seed_titles.append(self.vocab.dataset.items[item].title)
        _add(intent.named_items, item)
        _add(intent.liked_items, item)

    def _years(self, norm: str, intent: ChatIntent) -> None:
        decade = _DECADE.search(norm)
        if decade:
            if decade.group(1):
                start = int(decade.group(1) + decade.group(2) + "0")
            else:
                d = int(decade.group(3))
                start = (1900 if d >= 3 else 2000) + 10 * d
            intent.year_min, intent.year_max = start, start + 9
        if (m := _BEFORE.search(norm)) is not None:
            year = int(m.group(2))
            intent.year_max = year if m.group(1) == "until" else year - 1
        if (m := _AFTER.search(norm)) is not None:
            year = int(m.group(2))
            intent.year_min = year + 1 if m.group(1) in ("after", "post", "newer than",
                                                         "later than") else year
        if not decade and intent.year_min is None and intent.year_max is None:
            if (m := _IN_YEAR.search(norm)) is not None:
                intent.year_min = intent.year_max = int(m.group(1))
        if any(re.search(rf"\b{re.escape(w)}\b", norm) for w in NEWER):
            intent.recency = "newer"
        elif any(re.search(rf"\b{re.escape(w)}\b", norm) for w in OLDER):
            intent.recency = "older"

    def _genres(self, toks: list[str], intent: ChatIntent, used: set[int],
                feel: Sequence[str] = ()) -> None:
        """Genre words in and out: a negation cue ('no', 'not', 'anything but') or a clause
        that calls them names ('rom coms are disgusting', ``feel``) excludes them."""
        negated, since_cue, i = False, 0, 0
        while i < len(toks):
            if i in used and not negated:
                i += 1
                continue
            if toks[i] in NEGATION or (toks[i] == "but" and i > 0
                                       and toks[i - 1] in ("anything", "everything")):
                negated, since_cue = True, 0
                i += 1
                continue
            hit = self.vocab.category_at(toks, i)
            if hit is not None and i < len(feel) and feel[i] == "negative":
                negated, since_cue = True, 0
            if hit is None:
                since_cue += 1
                if since_cue > 3 or toks[i] in {"but", "with", "instead", "only", "just"}:
                    negated = False
                i += 1
                continue
            category, width = hit
            if not negated and width == 1 and toks[i] in SUBGENRE_WORDS \
                    and toks[i] not in intent.wishes:
                intent.wishes.append(toks[i])  # "heist" says more than "Crime"
            target, other = ((intent.exclude_categories, intent.include_categories) if negated
                             else (intent.include_categories, intent.exclude_categories))
            if category not in target:
                target.append(category)
            if category in other:
                other.remove(category)
            i += width
            # "no horror or thrillers" keeps the negation; "no horror, funny ones" does not
            if not (negated and i + 1 < len(toks) and toks[i] in {"or", "and", "nor"}
                    and self.vocab.category_at(toks, i + 1) is not None):
                negated = False
            else:
                i += 1

    def _wishes(self, toks: list[str], intent: ChatIntent, used: set[int]) -> None:
        for i in range(len(toks)):
            if i in used:
                continue
            cue = next((c for c in WISH_CUES if _starts(toks, i, c)), None)
            if cue is None:
                continue
            start = i + len(cue)
            stop = start
            while stop < len(toks) and toks[stop] not in WISH_BOUNDARY:
                stop += 1
            phrase = self._described([toks[j] for j in range(start, stop) if j not in used])
            if self._wishful(phrase) and phrase not in intent.wishes + intent.likes:
                intent.wishes.append(phrase if cue != ("set", "in") else f"set in {phrase}")
