"""check_adapter: an adapter for another base model, or with too high a rank, is refused
before any backend loads it (unit tests on files; no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastelens.errors import ConfigError
from tastelens.llm.adapters import check_adapter, read_adapter_config

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
         "vocab_size": 49152, "num_hidden_layers": 30, "num_attention_heads": 9,
         "num_key_value_heads": 3, "intermediate_size": 1536, "torch_dtype": "float32"}


def model_dir(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**LLAMA, **changes}))
    return folder


def adapter_dir(folder: Path, base: str, **changes: object) -> Path:
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "base_model_name_or_path": base,
              "target_modules": ["q_proj", "v_proj"], "use_dora": False,
              "modules_to_save": None, **changes}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_same_base_path_is_accepted(tmp_path: Path) -> None:
    base = model_dir(tmp_path / "base")
    adapter = adapter_dir(tmp_path / "a", str(base))
    assert check_adapter(adapter, str(base), 16, for_vllm=True)["r"] == 8
    assert read_adapter_config(adapter)["base_model_name_or_path"] == str(base)


def test_another_copy_of_the_same_base_is_accepted(tmp_path: Path) -> None:
    trained_on = model_dir(tmp_path / "machine-a" / "smollm2")
    served = model_dir(tmp_path / "machine-b" / "smollm2")
    check_adapter(adapter_dir(tmp_path / "a", str(trained_on)), str(served), 16)
    # The training machine's folder is gone: the fingerprint stored by the trainer decides.
    gone = adapter_dir(tmp_path / "b", "/nowhere/smollm2")
    (gone / "base_model.json").write_text(json.dumps({"base_model": "/nowhere/smollm2",
                                                      "fingerprint": LLAMA}))
    check_adapter(gone, str(served), 16)


def test_a_different_base_is_refused_with_the_difference(tmp_path: Path) -> None:
    bigger = model_dir(tmp_path / "bigger", hidden_size=960, num_hidden_layers=32)
    served = model_dir(tmp_path / "served")
    adapter = adapter_dir(tmp_path / "a", str(bigger))
    with pytest.raises(ConfigError) as info:
        check_adapter(adapter, str(served), 16)
    message = str(info.value)
    assert str(adapter) in message and "hidden_size" in message and "960" in message
    unknown = adapter_dir(tmp_path / "b", "some-org/other-model")
    with pytest.raises(ConfigError, match="cannot be compared"):
        check_adapter(unknown, str(served), 16)


def test_rank_and_vllm_servability(tmp_path: Path) -> None:
    base = model_dir(tmp_path / "base")
    with pytest.raises(ConfigError, match="rank 32 is above llm.max_lora_rank=16"):
        check_adapter(adapter_dir(tmp_path / "a", str(base), r=32), str(base), 16)
    with pytest.raises(ConfigError, match="rank 64"):
        check_adapter(adapter_dir(tmp_path / "b", str(base), rank_pattern={"q_proj": 64}),
                      str(base), 16)
    odd = adapter_dir(tmp_path / "c", str(base), target_modules=["embed_tokens"])
    check_adapter(odd, str(base), 16)  # the transformers backend can load it
    with pytest.raises(ConfigError, match="vLLM serves plain LoRA"):
        check_adapter(odd, str(base), 16, for_vllm=True)
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        check_adapter(tmp_path / "missing", str(base), 16)
