"""The recommendation agent, one folder per stage, in the order a request travels:

- ``profile/``: the interest profile — data facts and drift, the LLM profiler;
- ``retrieve/``: candidates from the item index — query plan, fusion, the retriever;
- ``rank/``: the LLM re-ranker and the ranking prompt it shares with fine-tuning;
- ``explain/``: explanations of the final list, every claim checked against the item;
- ``pipeline.py``: the one object that wires the stages (CLI, chat, API and eval call it);
- ``recommendation.py``: the types that flow between the stages;
- ``chat/``: a conversation on top of the pipeline;
- ``jobs/``: many users at once — the profile job and batch recommendations (one process or
  Ray).
"""
