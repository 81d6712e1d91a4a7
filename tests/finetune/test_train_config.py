"""Training-config validation: every problem is a ConfigError naming the file and key, raised
before any model is loaded (these tests never import torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastelens.errors import ConfigError
from tastelens.finetune.collate import DataOrder
from tastelens.finetune.jsonl import Example, write_jsonl
from tastelens.finetune.train_config import TrainConfig, load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "finetune" / "configs"


def write_data(folder: Path, n_train: int = 4, n_eval: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)

    def example(i: int, split: str) -> Example:
        return Example(id=f"{split}-{i}", task="rank", target="B", messages=[
            {"role": "system", "content": "Rank."}, {"role": "user", "content": f"Pick {i}"}])

    write_jsonl(folder / "train.jsonl", [example(i, "t") for i in range(n_train)])
    write_jsonl(folder / "eval.jsonl", [example(i, "e") for i in range(n_eval)])
    (folder / "card.json").write_text(json.dumps({"counts": {"train": n_train}}))
    return folder


def write_config(path: Path, body: str, data: Path) -> Path:
    path.write_text(f'data_dir = "{data}"\noutput_dir = "{path.parent / "out"}"\n{body}')
    return path


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


def test_valid_config_round_trips_through_json(tmp_path: Path, data: Path) -> None:
    cfg = load_train_config(write_config(tmp_path / "a.toml", "max_steps = 3\n[lora]\nr = 4\n",
                                         data), max_lora_rank=16)
    assert cfg.lora.r == 4 and cfg.max_steps == 3 and cfg.total_steps(100) == 3
    assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg


@pytest.mark.parametrize(("body", "key", "words"), [
    ("lr = -1\n", "lr", "greater than 0"),
    ("bacth_size = 4\n", "bacth_size", "unknown key"),
    ("[lora]\nr = 64\n", "lora.r", "max_lora_rank=16"),
    ('[lora]\ntarget_modules = ["embed_tokens"]\n', "lora.target_modules", "vLLM"),
    ("early_stopping_patience = 2\neval_every = 0\n", "early_stopping_patience", "eval_every"),
    ('dtype = "float16"\ndevice = "cpu"\n', "dtype", "CPU"),
    ("max_steps = [\n", "", "not valid TOML"),
])
def test_bad_values_name_file_and_key(tmp_path: Path, data: Path, body: str, key: str,
                                      words: str) -> None:
    path = write_config(tmp_path / "bad.toml", body, data)
    with pytest.raises(ConfigError) as info:
        load_train_config(path, max_lora_rank=16)
    message = str(info.value)
    assert str(path) in message and words in message
    if key:
        assert repr(key) in message


def test_data_problems_are_config_errors(tmp_path: Path, data: Path) -> None:
    with pytest.raises(ConfigError, match="'data_dir'.*is not a folder"):
        load_train_config(write_config(tmp_path / "a.toml", "", tmp_path / "missing"))
    (data / "train.jsonl").write_text('{"id": "x", "task": "rank"}\n')
    with pytest.raises(ConfigError, match=r"train.jsonl, line 1"):
        load_train_config(write_config(tmp_path / "a.toml", "", data))
    write_data(data)
    (data / "card.json").write_text("{oops")
    with pytest.raises(ConfigError, match="card.json is not valid JSON"):
        load_train_config(write_config(tmp_path / "a.toml", "", data))
    write_data(data, n_eval=0)
    with pytest.raises(ConfigError, match="'eval_every'.*no examples"):
        load_train_config(write_config(tmp_path / "a.toml", "eval_every = 5\n", data))
    assert load_train_config(write_config(tmp_path / "a.toml", "eval_every = 0\n", data))
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.toml")


def test_overrides_are_validated(tmp_path: Path, data: Path) -> None:
    path = write_config(tmp_path / "a.toml", "", data)
    assert load_train_config(path, max_steps=7, output_dir=tmp_path / "o").max_steps == 7
    with pytest.raises(ConfigError, match="'batch_size'"):
        load_train_config(path, batch_size=0)


@pytest.mark.parametrize("name", ["tiny", "rank-cpu", "rank-gpu", "profile-cpu", "profile-gpu"])
def test_shipped_configs_validate(name: str, data: Path) -> None:
    # The shipped configs point at data that may not exist here; the values must still be valid.
    cfg = load_train_config(CONFIGS / f"{name}.toml", max_lora_rank=16, check_data=False)
    assert cfg.lora.r <= 16
    if name == "tiny":
        assert cfg.max_seq_len <= 256 and cfg.lora.r == 4


def test_data_order_is_a_function_of_seed_and_position() -> None:
    order = DataOrder(10, batch_size=4, seed=3)
    epoch0 = [order.batch(m) for m in range(3)]
    assert sorted(i for b in epoch0 for i in b) == list(range(10))  # each example once
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert DataOrder(10, 4, 3).batch(4) == order.batch(4)  # a fresh order (resume) agrees
    assert order.batch(3) != order.batch(0) or order.batch(4) != order.batch(1)  # reshuffled
