"""Detoxify through its real loading and scoring code, on tiny random-weight checkpoints built here.

Each checkpoint has the format of Detoxify's released ones ({"config": training config,
"state_dict": transformers weights}, class names under config.dataset.args, the base model's Hub
name under config.arch.args.model_type) and sits beside offline-built config and tokenizer files:
a WordPiece vocab for BERT ("original"), a byte-level BPE for RoBERTa ("unbiased"), a
sentencepiece model for XLM-R ("multilingual"). Random weights say nothing about accuracy, only
that loading, truncation and the output contract work. No test may open a network connection.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import socket
from pathlib import Path

import pytest

if importlib.util.find_spec("detoxify") is None:
    pytest.skip("detoxify is not installed (pip install -e '.[detoxify]')", allow_module_level=True)

import torch  # noqa: E402

from models.safety.detoxify_backend import DetoxifyChecker  # noqa: E402

SENTENCES = [
    "you are a kind and good friend",
    "i hate you , you stupid idiot",
    "we love this sunny day together",
    "they will hurt you and your family",
    "thank you for telling me how you feel",
]
WORDS = sorted({word for sentence in SENTENCES for word in sentence.split()})
WINDOW = 40  # tokens the tiny models see (the released ones: 512)
ORIGINAL_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
UNBIASED_CLASSES = ["toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat",
                    "sexual_explicit"]
EXPECTED = {
    "original": ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"],
    "unbiased": UNBIASED_CLASSES,
    "multilingual": UNBIASED_CLASSES,
}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Models this small gain nothing from more threads, and on a busy 2-core machine OpenMP's
    # spinning threads make each forward pass 100x slower. Restored for the other test modules.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def refusing_connections():
    """Fails if anything inside tries to open a connection, even if a library swallows the error."""
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield
    assert not attempts, f"tried to connect to {attempts}"


@pytest.fixture(autouse=True)
def _no_network():
    with refusing_connections():
        yield


ARCH = {  # config.arch.args of the released checkpoints: base model, model class, tokenizer class
    "original": ("bert-base-uncased", "BertForSequenceClassification", "BertTokenizer"),
    "unbiased": ("roberta-base", "RobertaForSequenceClassification", "RobertaTokenizer"),
    "multilingual": ("xlm-roberta-base", "XLMRobertaForSequenceClassification", "XLMRobertaTokenizer"),
}


def _tokenizer(kind: str, folder: Path):
    import transformers

    return getattr(transformers, ARCH[kind][2]).from_pretrained(folder, local_files_only=True)


def _tokenizer_files(kind: str, folder: Path) -> int:
    """Writes an offline-built tokenizer for `kind`; returns its vocabulary size."""
    _write_tokenizer(kind, folder)
    return len(_tokenizer(kind, folder))


def _write_tokenizer(kind: str, folder: Path) -> None:
    if kind == "original":
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
        # No model_max_length, as in old Hub repos: the backend must cap the length itself.
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
        return
    if kind == "unbiased":
        from tokenizers import ByteLevelBPETokenizer

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(str(folder))  # vocab.json + merges.txt, as roberta-base ships them
        return
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20), model_writer=model, vocab_size=60, model_type="bpe",
        minloglevel=2)
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())


def _architecture(kind: str, vocab_size: int, num_labels: int, **changes):
    import transformers

    if kind == "original":
        config = transformers.BertConfig(vocab_size=vocab_size, max_position_embeddings=WINDOW,
                                         num_labels=num_labels, **{**TINY, **changes})
        return config, transformers.BertForSequenceClassification
    # RoBERTa-style position ids start after the padding index: 2 positions are never used.
    common = {"vocab_size": vocab_size, "max_position_embeddings": WINDOW + 2, "pad_token_id": 1,
              "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1, "num_labels": num_labels}
    if kind == "unbiased":
        return (transformers.RobertaConfig(**common, **{**TINY, **changes}),
                transformers.RobertaForSequenceClassification)
    return (transformers.XLMRobertaConfig(**common, **{**TINY, **changes}),
            transformers.XLMRobertaForSequenceClassification)


def build_model_dir(folder: Path, kind: str, config_labels: int | None = None, seed: int = 0,
                    **config_changes) -> Path:
    """A Detoxify model directory: checkpoint + config.json + tokenizer files.

    `config_labels` writes config.json with another label count than the checkpoint's, as a base
    model's config.json (2 labels) has; `config_changes` alter config.json's architecture only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _tokenizer_files(kind, folder)
    num_classes = 6 if kind == "original" else 16  # unbiased/multilingual: 7 named + 9 identities
    config, model_class = _architecture(kind, vocab_size, num_classes)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    file_config, _ = _architecture(kind, vocab_size, config_labels or num_classes, **config_changes)
    file_config.save_pretrained(folder)
    arch = ARCH[kind]
    checkpoint = {
        "config": {
            "name": f"Jigsaw_{kind}",
            "arch": {"type": kind, "args": {"num_classes": num_classes, "model_type": arch[0],
                                            "model_name": arch[1], "tokenizer_name": arch[2]}},
            "dataset": {"type": "Jigsaw", "args": {
                "classes": ORIGINAL_CLASSES if kind == "original" else UNBIASED_CLASSES}},
        },
        "state_dict": model.state_dict(),
    }
    filename = {"original": "toxic_original-c1212f89.ckpt", "unbiased": "toxic_debiased-c7548aa0.ckpt",
                "multilingual": "multilingual_debiased-0b549669.ckpt"}[kind]
    torch.save(checkpoint, folder / filename)
    return folder


def _reference_scores(folder: Path, kind: str, text: str) -> list[float]:
    """What the checkpoint's weights give for `text`, computed without Detoxify or the backend."""
    checkpoint = torch.load(next(folder.glob("*.ckpt")), weights_only=True)
    tokenizer = _tokenizer(kind, folder)
    num_classes = checkpoint["config"]["arch"]["args"]["num_classes"]
    config, model_class = _architecture(kind, len(tokenizer), num_classes)
    model = model_class(config).eval()
    model.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
    return torch.sigmoid(logits).tolist()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def _multilingual_param():
    marks = []
    if not (_importable("sentencepiece") and _importable("google.protobuf")):
        marks.append(pytest.mark.skip(reason="XLM-R's tokenizer conversion needs sentencepiece and protobuf"))
    return pytest.param("multilingual", marks=marks)


@pytest.fixture(scope="module", params=["original", "unbiased", _multilingual_param()])
def tiny(request, tmp_path_factory):
    kind = request.param
    # config.json as a base model ships it (2 labels), not the checkpoint's 6 or 16 outputs.
    folder = build_model_dir(tmp_path_factory.mktemp(f"detoxify-{kind}"), kind, config_labels=2)
    with refusing_connections():
        checker = DetoxifyChecker(folder)
    return kind, folder, checker


def test_named_scores_in_unit_range(tiny):
    kind, _, checker = tiny
    assert checker.name == f"detoxify-{kind}"
    for text in SENTENCES:
        scores = checker.scores(text)
        assert list(scores) == EXPECTED[kind]
        assert all(type(value) is float and 0.0 <= value <= 1.0 for value in scores.values())


def test_scores_are_the_checkpoints_weights(tiny):
    # Equal to the checkpoint's own model: nothing re-initialised, the class order kept, and a
    # config.json with another label count (2) did not change the number of outputs.
    kind, folder, checker = tiny
    text = SENTENCES[1]
    expected = _reference_scores(folder, kind, text)[: len(EXPECTED[kind])]
    assert list(checker.scores(text).values()) == pytest.approx(expected, abs=1e-5)


def test_deterministic_across_calls_and_loads(tiny):
    _, folder, checker = tiny
    first = [checker.scores(text) for text in SENTENCES]
    assert [checker.scores(text) for text in SENTENCES] == first
    assert [DetoxifyChecker(folder).scores(text) for text in SENTENCES[:2]] == first[:2]
    # The text matters: random weights still give different texts different scores.
    assert first[0] != first[1]


def test_long_text_is_cut_to_the_window(tiny):
    _, _, checker = tiny
    assert checker.max_tokens == WINDOW
    long_text = " ".join(SENTENCES * 400)  # ~14,000 words
    scores = checker.scores(long_text)
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    # Words past the window change nothing: the model saw the same first WINDOW tokens.
    assert checker.scores(long_text + " stupid idiot" * 500) == scores


def test_empty_and_odd_text(tiny):
    _, _, checker = tiny
    for text in ("", "   ", "\n", "😡😡 ¿qué? <script>", "x" * 5000):
        scores = checker.scores(text)
        assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in scores.values())


def test_config_with_the_checkpoints_label_count_gives_the_same_scores(tiny, tmp_path):
    kind, _, checker = tiny
    matching = build_model_dir(tmp_path / "matching", kind)  # config.json with 6/16 labels
    assert DetoxifyChecker(matching).scores(SENTENCES[3]) == checker.scores(SENTENCES[3])


def test_config_for_another_architecture_is_a_clear_error(tmp_path):
    folder = build_model_dir(tmp_path / "m", "original", hidden_size=48)
    with pytest.raises(ValueError, match=r"toxic_original-c1212f89\.ckpt .* does not load with the config"):
        DetoxifyChecker(folder)


def test_checkpoint_missing_weights_is_refused(tmp_path):
    # Keys saved with the training wrapper's "model." prefix match no weight of the model: transformers
    # would only warn and score with random weights.
    folder = build_model_dir(tmp_path / "m", "original")
    path = folder / "toxic_original-c1212f89.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"] = {f"model.{key}": value for key, value in checkpoint["state_dict"].items()}
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="lacks .* weights of BertForSequenceClassification"):
        DetoxifyChecker(folder)


def test_more_class_names_than_outputs_is_refused(tmp_path):
    folder = build_model_dir(tmp_path / "m", "original")
    path = folder / "toxic_original-c1212f89.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"]["dataset"]["args"]["classes"].append("spam")
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="names 7 classes for 6 outputs"):
        DetoxifyChecker(folder)


def test_directory_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Detoxify model directory"):
        DetoxifyChecker(tmp_path / "absent")
    folder = build_model_dir(tmp_path / "m", "original")
    with pytest.raises(FileNotFoundError, match="no checkpoint other.ckpt"):
        DetoxifyChecker(folder, checkpoint="other.ckpt")

    (folder / "second.ckpt").write_bytes((folder / "toxic_original-c1212f89.ckpt").read_bytes())
    with pytest.raises(FileNotFoundError, match="holds 2 Detoxify .ckpt files"):
        DetoxifyChecker(folder)
    assert DetoxifyChecker(folder, checkpoint="second.ckpt").name == "detoxify-second"

    (folder / "second.ckpt").unlink()
    (folder / "config.json").rename(folder / "config.json.bak")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        DetoxifyChecker(folder)
    (folder / "config.json.bak").rename(folder / "config.json")

    (folder / "toxic_original-c1212f89.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="holds 0 Detoxify .ckpt files"):
        DetoxifyChecker(folder)
    torch.save({"weights": torch.zeros(2)}, folder / "other.ckpt")
    with pytest.raises(ValueError, match="not a Detoxify checkpoint"):
        DetoxifyChecker(folder)
    (folder / "other.ckpt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        DetoxifyChecker(folder)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    folder = build_model_dir(tmp_path / "m", "original")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        DetoxifyChecker(folder, device="cuda")


def test_the_setting_picks_detoxify_from_the_model_cache(tmp_path):
    from config import wiring
    from config.settings import Settings

    build_model_dir(tmp_path / "detoxify-original", "original", config_labels=2)
    settings = Settings(toxicity_backend="detoxify", model_cache_dir=tmp_path)
    checker = wiring.toxicity_checker(settings)
    assert checker.name == "detoxify-original" and "toxicity" in checker.scores("hello")
