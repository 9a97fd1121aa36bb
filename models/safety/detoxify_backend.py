"""Toxicity scores from Detoxify (Unitary's Jigsaw classifiers), loaded from local files only.

Nothing is downloaded here. `heartline models fetch --toxicity detoxify` fills one directory per
Detoxify model on a connected machine; copy it as it is. A model directory holds the Detoxify
checkpoint (a torch file: {"config": <training config>, "state_dict": <transformers weights>})
and, beside it, the Hugging Face config and tokenizer files of the checkpoint's base model:

    detoxify-original/                    BertForSequenceClassification, 6 outputs
        toxic_original-c1212f89.ckpt      Detoxify release v0.1-alpha
        config.json                       from unitary/toxic-bert (or google-bert/bert-base-uncased)
        vocab.txt, tokenizer_config.json  from the same repo (special_tokens_map.json optional)

    detoxify-unbiased/                    RobertaForSequenceClassification, 16 outputs, 7 named
        toxic_debiased-c7548aa0.ckpt      Detoxify release v0.3-alpha
        config.json, vocab.json, merges.txt, tokenizer_config.json
                                          from unitary/unbiased-toxic-roberta (or roberta-base)

    detoxify-multilingual/                XLMRobertaForSequenceClassification, 16 outputs, 7 named
        multilingual_debiased-0b549669.ckpt   Detoxify release v0.4-alpha
        config.json, sentencepiece.bpe.model, tokenizer_config.json (+ tokenizer.json, which
        spares the sentencepiece conversion, from FacebookAI/xlm-roberta-base)

The checkpoints are not on the Hub: they are assets of GitHub releases of unitaryai/detoxify
(`detoxify.detoxify.MODEL_URLS`; the 8 hex digits in each name are the start of its SHA-256).
Only the architecture in config.json has to match the checkpoint: the number of outputs is
taken from the checkpoint, so a base model's config.json (2 labels) works too.

Why not `Detoxify(checkpoint=..., huggingface_config_path=...)` as it is: detoxify 0.5.x still
resolves the checkpoint's base-model name ("bert-base-uncased") on the Hub before it looks at
the local path, so it raises OSError offline (unitaryai/detoxify PR #126, unmerged), and it
builds the model from config.json's num_labels, so a config whose label count differs from the
checkpoint's makes transformers 5 raise. This class runs detoxify's own model/tokenizer loader
(`get_model_and_tokenizer`) with the base-model name replaced by the local directory, then
scores with `Detoxify.predict`. Import torch/detoxify inside the class: this module imports
without them. Install with the `detoxify` extra.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

log = logging.getLogger(__name__)

# Detoxify's model names and the checkpoint file each one uses (detoxify.detoxify.MODEL_URLS).
CHECKPOINTS: dict[str, str] = {
    "original": "toxic_original-c1212f89.ckpt",
    "unbiased": "toxic_debiased-c7548aa0.ckpt",
    "multilingual": "multilingual_debiased-0b549669.ckpt",
    "original-small": "original-albert-0e1d6498.ckpt",
    "unbiased-small": "unbiased-albert-c8519128.ckpt",
}
# Detoxify standardises the class names of its older checkpoints (as load_checkpoint does).
_RENAMED = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
# Models whose position ids start after the padding index: fewer usable positions than
# max_position_embeddings (514 -> 512 for roberta-base and xlm-roberta-base).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


class DetoxifyChecker:
    """Detoxify's named scores (toxicity, severe_toxicity, obscene, threat, insult,
    identity_attack, and sexual_explicit for the unbiased/multilingual models), each in [0, 1].

    `model_dir` is laid out as in the module docstring; `checkpoint` names the .ckpt file when
    the directory holds more than one. Text longer than the model's window (512 tokens for the
    released models) is cut to its first 512 tokens.
    """

    def __init__(self, model_dir: Path | str, device: str = "cpu", checkpoint: str | None = None) -> None:
        model_dir = Path(model_dir)
        ckpt_path = _checkpoint_file(model_dir, checkpoint)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{model_dir} has no config.json: put the Hugging Face config and tokenizer files of "
                f"the checkpoint's base model beside {ckpt_path.name} (heartline models fetch "
                "--toxicity detoxify does)"
            )
        try:
            from detoxify.detoxify import Detoxify, get_model_and_tokenizer
        except ImportError as exc:
            raise ImportError("the Detoxify backend needs detoxify: pip install 'heartline[detoxify]'") from exc
        import torch

        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")

        loaded = _load(ckpt_path, torch)
        arch, class_names = _read_config(loaded, ckpt_path)
        num_classes = int(arch["num_classes"])
        if not 0 < len(class_names) <= num_classes:
            raise ValueError(f"{ckpt_path} names {len(class_names)} classes for {num_classes} outputs")
        state_dict = loaded["state_dict"]
        try:
            # model_type is the base model's Hub name in the checkpoint; the local directory in its
            # place makes detoxify read config.json (with num_labels=num_classes) and the
            # tokenizer from disk. huggingface_config_path=None keeps that config object: given a
            # path, detoxify would rebuild the model from config.json's own label count.
            model, tokenizer = get_model_and_tokenizer(
                model_type=str(model_dir),
                model_name=arch["model_name"],
                tokenizer_name=arch["tokenizer_name"],
                num_classes=num_classes,
                state_dict=state_dict,
                huggingface_config_path=None,
            )
        except (OSError, RuntimeError, ValueError, AttributeError, KeyError) as exc:
            raise ValueError(
                f"{ckpt_path.name} ({arch['model_name']}, {num_classes} outputs) does not load with "
                f"the config and tokenizer files in {model_dir}: {exc}"
            ) from exc
        # transformers fills weights missing from the state dict with random values and only
        # warns: random toxicity scores must not pass for a model.
        missing = sorted(name for name, _ in model.named_parameters() if name not in state_dict)
        if missing:
            raise ValueError(
                f"{ckpt_path.name} lacks {len(missing)} weights of {arch['model_name']} "
                f"(e.g. {', '.join(missing[:3])}): wrong checkpoint or config.json for it"
            )
        del loaded, state_dict

        # Without model_max_length in tokenizer_config.json, truncation=True does not cut at all
        # and a long text overflows the position embeddings.
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if model.config.model_type in _OFFSET_POSITIONS:
            limit -= int(model.config.pad_token_id or 0) + 1
        if limit > 0 and (tokenizer.model_max_length or 0) > limit:
            tokenizer.model_max_length = limit
        self.max_tokens = int(tokenizer.model_max_length)

        # Detoxify.__init__ only loads (through the Hub lookup above) and sets these attributes;
        # predict() uses them and nothing else.
        self._detoxify = Detoxify.__new__(Detoxify)
        self._detoxify.model = model.to(device).eval()
        self._detoxify.tokenizer = tokenizer
        self._detoxify.class_names = class_names
        self._detoxify.device = device
        self.labels: tuple[str, ...] = tuple(class_names)
        self.name = f"detoxify-{_variant(ckpt_path)}"
        log.info("loaded %s from %s (%d scores, %d tokens, %s)", self.name, model_dir,
                 len(class_names), self.max_tokens, device)

    def scores(self, text: str) -> dict[str, float]:
        result = self._detoxify.predict(text)
        return {label: min(1.0, max(0.0, float(result[label]))) for label in self.labels}


def _checkpoint_file(model_dir: Path, checkpoint: str | None) -> Path:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"no Detoxify model directory at {model_dir}")
    if checkpoint is not None:
        path = model_dir / checkpoint
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint {checkpoint} in {model_dir}")
        return path
    found = sorted(model_dir.glob("*.ckpt"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{model_dir} holds {len(found)} Detoxify .ckpt files"
            + (f" ({', '.join(p.name for p in found)}): name one with checkpoint=" if found else
               f", expected one such as {CHECKPOINTS['original']}")
        )
    return found[0]


def _load(path: Path, torch) -> dict:
    try:
        # Tensors, dicts, lists and strings only: no code runs while unpickling.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
        # Detoxify itself loads with weights_only=False: fall back for checkpoints that hold other
        # objects. The file comes from the operator's own model directory.
        log.warning("%s holds more than tensors and plain data; loading it as a full pickle", path.name)
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise ValueError(f"{path} is not a readable torch checkpoint: {exc2}") from exc2
    except Exception as exc:
        raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
        raise ValueError(f"{path} is not a Detoxify checkpoint (a dict with 'config' and 'state_dict')")
    return loaded


def _read_config(loaded: dict, path: Path) -> tuple[dict, list[str]]:
    """The architecture arguments and the standardised class names of a Detoxify checkpoint."""
    config = loaded["config"]
    try:
        arch = config["arch"]["args"]
        missing = [key for key in ("model_name", "tokenizer_name", "num_classes") if key not in arch]
        if missing:
            raise KeyError(", ".join(missing))
        # Released checkpoints keep the names under dataset.args (where detoxify reads them);
        # configs of newer training code keep them under arch.args.
        classes = config.get("dataset", {}).get("args", {}).get("classes") or arch["classes"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} has no Detoxify training config (missing {exc})") from exc
    return arch, [_RENAMED.get(str(name), str(name)) for name in classes]


def _variant(path: Path) -> str:
    for variant, filename in CHECKPOINTS.items():
        if path.name == filename:
            return variant
    return path.stem
