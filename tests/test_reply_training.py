"""`heartline train reply` on a tiny random Llama that reads with SmolLM2's real tokenizer: bad
rows are refused with their line, training writes an adapter with its metrics and resumes from
its checkpoint, and the adapter loads through the real backends and changes what they say."""

from __future__ import annotations

import json

import pytest
import torch

from bots.cli import main
from models.tools.reply_data import Dialogue

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

ROW = {"id": "t-1", "persona": "friend", "custom_persona": None, "feeling": "sadness", "turns": [],
       "message": "My goldfish Bubbles died this morning.",
       "reply": "Oh no, I'm so sorry about Bubbles.", "recall": []}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, settings):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from config.wiring import packaged_reply_model

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(packaged_reply_model(settings.models_dir))
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True))
    base = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    tokenizer.save_pretrained(base)
    model.save_pretrained(base)
    return base


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_bad_row_is_refused_with_its_line_and_why(tmp_path, tiny_base, capsys):
    data = write(tmp_path / "bad.jsonl", [ROW, {**ROW, "id": "t-2", "feeling": "glee"}])
    assert main(["train", "reply", "--data", str(data), "--base", str(tiny_base),
                 "--out", str(tmp_path / "out")]) == 2
    assert "bad.jsonl line 2: \"feeling\" must be one of" in capsys.readouterr().err
    (tmp_path / "worse.jsonl").write_text(json.dumps(ROW) + "\n{not json\n")
    assert main(["train", "reply", "--data", str(tmp_path / "worse.jsonl"), "--base", str(tiny_base),
                 "--out", str(tmp_path / "out")]) == 2
    assert "worse.jsonl line 2: not JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base):
    """Three steps, then a second run that resumes from the third step's checkpoint to the
    fortieth: enough for the tiny model to learn its one reply by heart."""
    root = tmp_path_factory.mktemp("trained")
    data, out = write(root / "one.jsonl", [ROW]), root / "adapter"
    common = ["train", "reply", "--data", str(data), "--dev", str(data), "--base", str(tiny_base),
              "--out", str(out), "--lr", "1e-2", "--batch-size", "1", "--lora-r", "8",
              "--rouge-samples", "1", "--no-memory-variants", "--save-steps", "3"]
    assert main([*common, "--max-steps", "3"]) == 0
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    assert main([*common, "--max-steps", "40", "--epochs", "40"]) == 0
    return out


def test_training_writes_an_adapter_its_metrics_and_resumes(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["resumed_from"] == "checkpoint-3"
    assert [epoch["step"] for epoch in metrics["epochs"]] == list(range(1, 41))  # one row: a step an epoch
    first, last = metrics["epochs"][0], metrics["epochs"][-1]
    assert last["val_loss"] < first["val_loss"] and last["rouge_l"] > first["rouge_l"]
    assert (trained / "adapter_model.safetensors").stat().st_size < 2_000_000


def test_the_adapter_loads_through_both_backends_and_changes_the_reply(trained, tiny_base, readers,
                                                                         monkeypatch):
    from config import wiring
    from config.settings import Settings
    from models.tools.reply_data import prompt_for

    request = prompt_for(Dialogue(**{**ROW, "turns": ()}), readers)
    monkeypatch.setenv("HEARTLINE_REPLY_MODEL_DIR", str(tiny_base))
    monkeypatch.setenv("HEARTLINE_REPLY_TEMPERATURE", "0")
    replies = {}
    for runtime in ("onnx", "transformers"):
        monkeypatch.setenv("HEARTLINE_REPLY_RUNTIME", runtime)
        monkeypatch.setenv("HEARTLINE_REPLY_ADAPTER_DIR", "none")
        plain = wiring.replier(Settings())
        monkeypatch.setenv("HEARTLINE_REPLY_ADAPTER_DIR", str(trained))
        adapted = wiring.replier(Settings())
        assert adapted.name == "tiny-llama+lora:adapter"
        replies[runtime] = (plain.generate(request), adapted.generate(request), adapted.generate(request))
    for runtime, (plain, first, again) in replies.items():
        assert plain != ROW["reply"], runtime
        assert first == again == ROW["reply"], (runtime, first, again)  # the second one rewinds


@pytest.fixture(scope="module")
def readers(pipeline):
    from models.tools.reply_data import Readers

    stages = pipeline.stages
    return Readers(stages.text_emotion, stages.languages, stages.judge.closeness)


def test_prompts_carry_what_the_pipeline_would_see(readers):
    from models.tools.reply_data import prompt_for

    talk = Dialogue("m-1", "friend", None, "neutral", (
        ("My sister Priya just moved to Lisbon for a new job.", "That's a big move for her."),
        ("I had pasta for lunch today, it was fine.", "Sounds tasty."),
        ("Work was long and the bus was late again.", "What a day."),
        ("I watched a film about whales tonight.", "Whales are amazing."),
    ), "Which city did my sister move to?", "Priya moved to Lisbon.", ("Lisbon",))
    full = prompt_for(talk, readers)
    # Four turns back is past the recent window: it comes back as a memory, as it would live.
    assert [m.role for m in full.messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert "Things they told you before: My sister Priya just moved to Lisbon" in full.messages[0].content
    assert "This message is about what they told you: My sister Priya" in full.messages[0].content
    fresh = prompt_for(talk, readers, history_turns=0)
    assert [m.role for m in fresh.messages] == ["system", "user"]
    assert fresh.context.memories[0].startswith("My sister Priya")
    # The readers set the prompt's feeling, as they would live, whatever the row's label says.
    mislabelled = Dialogue("m-2", "friend", None, "joy", (), "My goldfish died and I cried all day.", "...")
    assert prompt_for(mislabelled, readers).emotion.primary_emotion == "sadness"
