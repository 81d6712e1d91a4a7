"""The renderer with the default model's real tokenizer (integration: needs the prepared
checkpoint from `tastelens models prepare`)."""

from pathlib import Path

import pytest

from tastelens.prompts.renderer import PromptRenderer, RendererConfig
from tastelens.prompts.selection import HistoryEntry
from tastelens.prompts.tokens import CharEstimateCounter, HFTokenizerCounter
from tastelens.schemas import Item

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from tastelens.config.settings import load_settings
    from tastelens.llm.models import default_model_dir, is_prepared

    folder = default_model_dir(load_settings())
    if not is_prepared(folder):
        pytest.skip(f"default model not prepared at {folder}: run `tastelens models prepare`")
    return folder


def long_history(n: int = 400) -> list[HistoryEntry]:
    genres = ("Action", "Comedy", "Drama", "Sci-Fi", "Thriller")
    return [HistoryEntry(Item(id=str(i), title=f"Some Film Title Number {i}, The ({1960 + i % 60})",
                              categories=(genres[i % 5], genres[(i + 2) % 5]),
                              tags=("atmospheric", "twist ending") if i % 3 == 0 else ()),
                         rating=0.5 + (i * 7 % 10) / 2, timestamp=i) for i in range(n)]


@pytest.mark.parametrize("budget", [800, 1536, 3000])
def test_real_tokenizer_budget_and_estimate_is_conservative(model_dir, budget):
    renderer = PromptRenderer(RendererConfig(max_prompt_tokens=budget), tokenizer_path=model_dir)
    assert renderer.counter.name == f"tokenizer:{model_dir.name}"
    prompt = renderer.render_profile(long_history(), {"top_categories": "Drama 30%",
                                                      "recent_trend": "steady"})
    assert prompt.prompt_tokens <= budget
    assert prompt.prompt_tokens == renderer.counter.count_messages(prompt.messages)
    # the chat template is counted: more than the bare contents
    assert prompt.prompt_tokens > sum(renderer.counter.count(m["content"])
                                      for m in prompt.messages)
    assert CharEstimateCounter().count_messages(prompt.messages) >= prompt.prompt_tokens
    assert isinstance(renderer.counter, HFTokenizerCounter)
