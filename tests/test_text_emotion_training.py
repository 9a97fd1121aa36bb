"""`heartline train text-emotion`: GoEmotions' own formats read as published, bad rows refused
with their line, the default head trained on the packaged MiniLM, and a tiny random BERT
fine-tuned as a multi-label classifier; each result loaded by the real reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bots.cli import main
from models.tools.text_emotion_training import GOEMOTIONS, DataError, load_examples

PROJECT_DATA = Path(__file__).resolve().parent.parent / "models" / "data" / "text_emotions"
RAW_HEADER = ["text", "id", "author", "subreddit", "link_id", "parent_id", "created_utc", "rater_id",
              "example_very_unclear", *GOEMOTIONS]


def raw_row(text: str, *labels: str, unclear: bool = False) -> str:
    flags = ["1" if name in labels else "0" for name in GOEMOTIONS]
    return ",".join([json.dumps(text), "e1", "a", "r", "l", "p", "1.5e9", "7", str(unclear).upper(), *flags])


def test_goemotions_as_published_is_read_in_the_shared_space(tmp_path):
    raw = tmp_path / "goemotions_1.csv"
    raw.write_text("\n".join([",".join(RAW_HEADER), raw_row("My dog died today.", "grief", "sadness"),
                              raw_row("Ugh, not again.", "annoyance"), raw_row("???", unclear=True),
                              raw_row("Thank you so much!", "gratitude", "joy")]) + "\n")
    examples, skipped = load_examples(raw)
    assert [e.labels for e in examples] == [("sadness",), ("anger",), ("joy",)] and skipped == 1

    simplified = tmp_path / "train.tsv"
    simplified.write_text("So proud of you\t21\teeq\nWhat?? How\t26,7\teer\n")
    assert [e.labels for e in load_examples(simplified)[0]] == [("joy",), ("surprise",)]
    simplified.write_text("So proud of you\t21\teeq\nWhat\t31\teer\n")
    with pytest.raises(DataError, match="line 2: label ids are numbers 0-27"):
        load_examples(simplified)

    plain = tmp_path / "mine.csv"
    plain.write_text("text,labels\nI can't stop shaking,fear;sadness\nlovely day,bliss\n")
    with pytest.raises(DataError, match="line 3: 'bliss' is no emotion Heartline knows"):
        load_examples(plain)


def test_the_default_head_trains_on_your_rows_and_loads_by_its_setting(tmp_path, pipeline, capsys, monkeypatch):
    rows = PROJECT_DATA.joinpath("train.jsonl").read_text().splitlines()[::4]  # a quarter: quick
    data = tmp_path / "mine.jsonl"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "my-head"
    assert main(["train", "text-emotion", "--data", str(data), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["validated_on"] >= 7 and report["macro_f1"] > 0.3  # seven emotions; chance is ~0.14
    assert (out / "head.joblib").is_file() and (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setenv("HEARTLINE_TEXT_EMOTION_MODEL_DIR", str(out))
    assert main(["eval", "emotion", "--modality", "text", "--out", str(tmp_path / "eval"),
                 "--data", str(PROJECT_DATA / "heldout.jsonl"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model"] == "all-MiniLM-L6-v2+ngrams+head:my-head" and scored["accuracy"] > 0.4


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random two-layer BERT that reads with the packaged MiniLM's own WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from models.emotion.minilm import packaged_encoder_dir

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder_dir())
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    base = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    tokenizer.save_pretrained(base)
    model.save_pretrained(base)
    return base


def test_a_transformers_classifier_fine_tunes_resumes_and_loads_as_the_goemotions_backend(tmp_path, tiny_bert):
    from models.emotion.goemotions import SequenceClassifierEmotionReader

    rows = [{"text": f"I miss her so much {n}", "labels": ["grief"]} for n in range(12)] + \
           [{"text": f"we won the final {n}!", "labels": ["joy", "excitement"]} for n in range(12)]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "classifier"
    common = ["train", "text-emotion", "--data", str(data), "--base", str(tiny_bert), "--out", str(out),
              "--validation", "0.25", "--batch-size", "4", "--lr", "5e-3"]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] and [e["epoch"] for e in metrics["epochs"]][-1] == 3
    assert {"val_loss", "macro_f1", "micro_f1"} <= set(metrics["epochs"][0])
    reader = SequenceClassifierEmotionReader(out)
    assert reader.labels == ["joy", "sadness"]
    assert reader.read("I miss her so much 3")[0].emotion in ("joy", "sadness", "neutral")
