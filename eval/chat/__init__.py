"""``tastelens eval chat``: the chat measured on conversations between people.

Human dialogues (ReDial's format or a small generic JSONL) are replayed turn by turn through
the chat the API serves, and the chat's list is scored against the film the human
recommender suggested next, beside baselines that see what the chat sees. In the order a run
uses them:

- :mod:`~tastelens.eval.chat.config` — the run config (``eval/configs/chat-redial.toml``);
- :mod:`~tastelens.eval.chat.dialogues` — the two formats, read into one type;
- :mod:`~tastelens.eval.chat.matching` — "Title (Year)" -> catalog item, with the chat's keys;
- :mod:`~tastelens.eval.chat.cases` — protocols 'first' and 'every', case kinds, the split;
- :mod:`~tastelens.eval.chat.baselines` — seeded registered systems, the dialogue embedding;
- :mod:`~tastelens.eval.chat.replay` — the chat in process or over HTTP;
- :mod:`~tastelens.eval.chat.scoring` — per-case metrics, bootstrap intervals;
- :mod:`~tastelens.eval.chat.harness` and :mod:`~tastelens.eval.chat.report` — the run.

docs/chat-evaluation.md explains the protocols and the outputs for users.
"""
