"""The production text-emotion backend through its real loading code, on a tiny random
RoBERTa GoEmotions classifier built here (the real one is 500 MB; `models fetch` gets it)."""

from __future__ import annotations

import pytest

from core.emotions import TEXT_LABELS, fuse, Reading

LABELS = [label for label in TEXT_LABELS if label != "neutral"] + ["neutral"]  # the Hub model's order


def classifier(folder, present: tuple[str, ...]):
    """A classifier whose output ignores the text: `present` labels on, the rest off."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["thank you so much, what a relief"] * 4, vocab_size=300, min_frequency=1,
                            show_progress=False, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder.mkdir()
    bpe.save_model(str(folder))
    config = RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32, max_position_embeddings=300,
                           problem_type="multi_label_classification",
                           id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    model = RobertaForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        model.classifier.out_proj.bias.copy_(torch.tensor([4.0 if l in present else -4.0 for l in LABELS]))
    model.save_pretrained(folder)
    return folder


def test_labels_that_are_present_come_back_with_sigmoid_scores(tmp_path):
    from models.emotion.goemotions import SequenceClassifierEmotionReader

    reader = SequenceClassifierEmotionReader(classifier(tmp_path / "thanks", ("gratitude", "relief")))
    scores = reader.read("thank you so much, what a relief " * 200)  # longer than the model takes
    assert sorted(s.emotion for s in scores) == ["gratitude", "relief"]
    assert all(s.confidence == pytest.approx(0.982, abs=1e-3) for s in scores)  # sigmoid(4)
    fused = fuse([Reading("text", tuple(scores))], {})
    assert (fused.primary_emotion, fused.confidence) == ("joy", 1.0)  # multi-label mass capped at 1


def test_nothing_confident_reads_neutral(tmp_path):
    from models.emotion.goemotions import SequenceClassifierEmotionReader

    [score] = SequenceClassifierEmotionReader(classifier(tmp_path / "flat", ())).read("ok")
    assert score.emotion == "neutral" and score.confidence > 0.9


def test_the_settings_choose_it(tmp_path, monkeypatch):
    from config import wiring
    from config.settings import Settings

    folder = classifier(tmp_path / "goemotions", ("anger",))
    monkeypatch.setenv("HEARTLINE_TEXT_EMOTION_BACKEND", "goemotions")
    monkeypatch.setenv("HEARTLINE_MODEL_CACHE_DIR", str(tmp_path))  # where `models fetch` puts it
    reader = wiring.text_emotion_reader(Settings())
    assert reader.name == "goemotions" and reader.read("grr")[0].emotion == "anger"
