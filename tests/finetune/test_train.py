"""LoRA training on the prepared SmolLM2 with tiny JSONL data: target-only loss, outputs that
both backends load, resume after a kill, early stopping. A few steps at short sequence
lengths; the model-loading tests are marked integration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.finetune import checkpoints as ckpt
from tastelens.finetune.jsonl import Example, write_jsonl
from tastelens.finetune.train import TrainResult, train
from tastelens.finetune.train_config import TrainConfig, load_train_config

TINY = Path(__file__).resolve().parents[2] / "finetune" / "configs" / "tiny.toml"
runner = CliRunner()


class Killed(Exception):
    """Stands in for SIGKILL: raised from the step hook, after that step's checkpoint."""


def example(i: int, split: str) -> Example:
    labels = "ABCD"
    lines = "\n".join(f"{label}. Movie {(7 * i + k) % 50}" for k, label in enumerate(labels))
    return Example(id=f"{split}-{i}", task="rank", target=labels[i % 4], messages=[
        {"role": "system", "content": "You rank movies for a user."},
        {"role": "user", "content": f"The user liked comedies.\n{lines}\nAnswer with a label."}])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ft-data")
    write_jsonl(folder / "train.jsonl", [example(i, "t") for i in range(12)])
    write_jsonl(folder / "eval.jsonl", [example(i, "e") for i in range(100, 104)])
    (folder / "card.json").write_text(json.dumps({"counts": {"train_examples": 12}}))
    return folder


def tiny(data_dir: Path, out: Path, **overrides: object) -> TrainConfig:
    # tiny.toml: 4 steps, eval every 2, checkpoint every 2, r=4, dropout on.
    return load_train_config(TINY, max_lora_rank=16, data_dir=data_dir, output_dir=out,
                             **overrides)


@pytest.fixture(scope="module")
def finished(data_dir: Path, prepared_model: Path, llm_settings: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tiny(data_dir, tmp_path_factory.mktemp("run")), llm_settings, resume=False)


@pytest.mark.integration
def test_only_target_tokens_carry_loss(data_dir: Path, prepared_model: Path,
                                       llm_settings: Settings) -> None:
    import torch

    from tastelens.finetune.collate import IGNORE, ChatEncoder, collate
    from tastelens.finetune.lora_model import load_lora_model, target_loss

    cfg = tiny(data_dir, data_dir / "unused")
    model, tok = load_lora_model(cfg, str(prepared_model), "cpu", torch.float32)
    ex = example(2, "t")
    encoded = ChatEncoder(tok).encode(ex)
    prompt = tok.apply_chat_template(ex.chat(), tokenize=True, add_generation_prompt=True,
                                     return_dict=True)["input_ids"]
    # The prompt is exactly what serving sends, all masked; the labels are target + end-of-turn.
    assert encoded.input_ids[:len(prompt)] == list(prompt)
    assert encoded.labels[:len(prompt)] == [IGNORE] * len(prompt)
    target = [t for t in encoded.labels if t != IGNORE]
    assert tok.decode(target) == f"{ex.target}{tok.eos_token}" and target[-1] == tok.eos_token_id

    longer = ChatEncoder(tok).encode(example(3, "t"))
    batch = collate([encoded, longer], tok.eos_token_id)
    model.eval()
    with torch.no_grad():
        loss_sum, n = target_loss(model, batch)
        reference = model(**batch).loss  # transformers' own mean over non-ignored labels
    assert n == encoded.n_target + longer.n_target == 4
    assert float(loss_sum) / n == pytest.approx(float(reference), rel=1e-4)
    # Changing a prompt token's label does not matter once it is masked; a target one does.
    batch["labels"][0, 0] = IGNORE
    with torch.no_grad():
        assert float(target_loss(model, batch)[0]) == pytest.approx(float(loss_sum), rel=1e-6)


@pytest.mark.integration
def test_run_writes_an_adapter_both_backends_load(finished: TrainResult, prepared_model: Path,
                                                  data_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tastelens.llm.adapters import check_adapter
    from tastelens.llm.base import ChatMessage, ChatRequest, ChatResult
    from tastelens.llm.transformers_local import TransformersBackend

    m, folder = finished.metrics, finished.adapter_dir
    assert m["steps"] == 4 and [s for s, _ in m["train_loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in m["eval_loss"]] == [2, 4] and m["best_step"] in (2, 4)
    assert m["tokens_per_s"] > 0 and m["peak_memory"]["rss_mib"] > 100 and m["resumed_at"] == []
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 4
    assert json.loads((folder / "card.json").read_text()) == json.loads(
        (data_dir / "card.json").read_text())
    saved = TrainConfig.model_validate_json((folder / "train_config.json").read_text())
    assert saved.max_steps == 4 and saved.lora.r == 4

    config = check_adapter(folder, str(prepared_model), 16, for_vllm=True)
    assert config["r"] == 4 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="rank 4 is above llm.max_lora_rank=2"):
        check_adapter(folder, str(prepared_model), 2)

    weights = load_file(str(folder / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # trained
    base = AutoModelForCausalLM.from_pretrained(prepared_model, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(folder))
    loaded = {k: v for k, v in peft_model.state_dict().items() if "lora_B" in k}
    assert loaded and all(v.abs().sum() >= 0 for v in loaded.values())
    first = next(k for k in weights if "lora_B" in k)
    match = next(v for k, v in loaded.items() if k.replace(".default", "") == first)
    assert torch.equal(match, weights[first])

    with TransformersBackend(model_path=str(prepared_model),
                             adapters={"tiny": folder}).load() as llm:
        reply = llm.chat(ChatRequest(messages=[ChatMessage(role="user", content="Hi")],
                                     adapter="tiny", max_tokens=2))
        assert isinstance(reply, ChatResult)


@pytest.mark.integration
def test_resume_after_a_kill_finishes_at_the_configured_step(
        data_dir: Path, finished: TrainResult, llm_settings: Settings, tmp_path: Path) -> None:
    cfg = tiny(data_dir, tmp_path / "run")

    def kill(step: int) -> None:
        if step == 3:  # after step 2's checkpoint, before step 4's: step 3 is lost
            raise Killed

    with pytest.raises(Killed):
        train(cfg, llm_settings, resume=False, on_step=kill)
    assert [s for s, _ in ckpt.list_checkpoints(cfg.output_dir)] == [2]
    assert not (cfg.output_dir / "adapter").exists()

    # Resume through the CLI, as a user would after a crash.
    result = runner.invoke(app, ["finetune", "train", "-c", str(TINY), "--data", str(data_dir),
                                 "--out", str(cfg.output_dir), "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "resumed at step 2" in result.output and "4 steps" in result.output
    m = json.loads((cfg.output_dir / "adapter" / "metrics.json").read_text())
    assert m["steps"] == 4 and m["resumed_at"] == [2]
    assert [s for s, _ in m["train_loss"]] == [1, 2, 3, 4]  # continuous, no gap or repeat
    # Weights, optimizer, scheduler, RNG (dropout is on) and data position were restored,
    # so the resumed run retraces the uninterrupted one.
    expected = [loss for _, loss in finished.metrics["train_loss"]]
    assert [loss for _, loss in m["train_loss"]] == pytest.approx(expected, rel=1e-3)
    assert [e for _, e in m["eval_loss"]] == pytest.approx(
        [e for _, e in finished.metrics["eval_loss"]], rel=1e-3)


@pytest.mark.integration
def test_early_stopping_keeps_the_best_adapter(data_dir: Path, prepared_model: Path,
                                               llm_settings: Settings, tmp_path: Path) -> None:
    # No eval can beat the untrained model's (step 0) by 100 nats: patience 2 stops after
    # the evals at steps 1 and 2, and the "best" adapter is the untrained one (lora_B = 0).
    from safetensors.torch import load_file

    cfg = tiny(data_dir, tmp_path / "run", max_steps=6, eval_every=1, eval_at_start=True,
               early_stopping_patience=2, early_stopping_min_delta=100.0)
    result = train(cfg, llm_settings, resume=False)
    m = result.metrics
    assert m["stopped_early"] and m["steps"] == 2 and m["total_steps"] == 6
    assert m["best_step"] == 0 and m["final_adapter"] == "best"
    assert [s for s, _ in m["eval_loss"]] == [0, 1, 2]
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert all(float(v.abs().sum()) == 0 for k, v in weights.items() if "lora_B" in k)


def test_resume_refuses_a_changed_config(tmp_path: Path) -> None:
    saved = {"lr": 0.001, "output_dir": "a", "seed": 1}
    ckpt.check_resumable(saved, {**saved, "output_dir": "b"}, tmp_path)  # a move is fine
    with pytest.raises(ConfigError, match=r"lr: 0.001 -> 0.002.*--no-resume"):
        ckpt.check_resumable(saved, {**saved, "lr": 0.002}, tmp_path)


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["finetune", "train", "-c", str(TINY), "--data",
                                 str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "Error:" in result.output and "'data_dir'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_letter_only_loss_leaves_out_the_end_token(prepared_model: Path) -> None:
    from transformers import AutoTokenizer

    from tastelens.finetune.collate import IGNORE, ChatEncoder

    tok = AutoTokenizer.from_pretrained(prepared_model)
    ex = example(1, "t")
    full, letter = ChatEncoder(tok).encode(ex), ChatEncoder(tok, end_token_loss=False).encode(ex)
    # The same prompt; only the letter carries loss (the re-ranker reads its log-probability).
    assert letter.input_ids == full.input_ids[:-1]
    assert tok.decode([t for t in letter.labels if t != IGNORE]) == ex.target
    assert letter.n_target == 1 and full.n_target == 2


@pytest.mark.integration
def test_top_layers_adapts_only_the_last_layers(data_dir: Path, prepared_model: Path) -> None:
    import torch

    from tastelens.finetune.lora_model import load_lora_model

    cfg = tiny(data_dir, data_dir / "unused")
    cfg = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"top_layers": 2})})
    model, _ = load_lora_model(cfg, str(prepared_model), "cpu", torch.float32)
    n_layers = model.get_base_model().config.num_hidden_layers
    adapted = {int(name.split(".layers.")[1].split(".")[0])
               for name, p in model.named_parameters() if p.requires_grad}
    assert adapted == {n_layers - 2, n_layers - 1}
    too_many = cfg.model_copy(update={"lora": cfg.lora.model_copy(
        update={"top_layers": n_layers + 1})})
    with pytest.raises(ConfigError, match=f"has {n_layers} decoder layers"):
        load_lora_model(too_many, str(prepared_model), "cpu", torch.float32)


def test_auto_dtype_is_bfloat16_on_cpus_that_compute_it(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    import torch

    from tastelens.finetune import lora_model
    from tastelens.llm import vllm_server

    cfg = TrainConfig(data_dir=tmp_path, output_dir=tmp_path / "o", device="cpu")
    monkeypatch.setattr(vllm_server, "cpu_has_fast_bf16", lambda: True)
    assert lora_model.resolve_device(cfg) == ("cpu", torch.bfloat16)
    monkeypatch.setattr(vllm_server, "cpu_has_fast_bf16", lambda: False)
    assert lora_model.resolve_device(cfg) == ("cpu", torch.float32)
    explicit = cfg.model_copy(update={"dtype": "float32"})
    monkeypatch.setattr(vllm_server, "cpu_has_fast_bf16", lambda: True)
    assert lora_model.resolve_device(explicit) == ("cpu", torch.float32)


@pytest.mark.integration
def test_merged_checkpoint_answers_like_the_adapter(finished: TrainResult, prepared_model: Path,
                                                    tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tastelens.finetune.merge import MERGED_FILE, merge_adapter

    out = merge_adapter(finished.adapter_dir, str(prepared_model), tmp_path / "merged")
    record = json.loads((out / MERGED_FILE).read_text())
    assert record["config"]["adapter"] == str(finished.adapter_dir.resolve())
    assert record["metrics"]["steps"] == 4 and record["git_commit"] is not None
    assert not (out / "adapter_config.json").exists()  # a plain checkpoint, no peft needed

    ids = torch.tensor([[1, 504, 2270, 314, 260, 3355, 30]])
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(prepared_model, dtype=torch.float32)
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, str(finished.adapter_dir))(input_ids=ids).logits
        folded = merged(input_ids=ids).logits
    assert torch.allclose(folded, adapted, atol=1e-4)
    assert not torch.allclose(folded, plain, atol=1e-4)  # the adapter changed the model

    with pytest.raises(ConfigError, match="no adapter_config.json"):
        merge_adapter(tmp_path, str(prepared_model), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
