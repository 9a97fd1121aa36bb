"""`heartline train voice-emotion`: the prosody classifier, trained on your own labelled clips.

Data is a folder per label (`angry/`, `happy/`, `neutral/`, `sad/`..., as RAVDESS or CREMA-D
sorted by emotion give) or a JSONL file of {"audio": a path relative to the file, "label"} (or
"labels", first one taken), the layout `heartline eval emotion --modality voice` reads. A label
is any one the shared emotion space knows (`sad`, `sadness`, `fearful`...).

Each clip is decoded and its prosody read once; the features go to OUT/features.jsonl as they
are read, so a run that is stopped resumes where it was. Then a stratified validation split,
the scaler and logistic regression the packaged reader uses, and OUT/model.joblib (which
HEARTLINE_VOICE_EMOTION_MODEL_DIR loads), OUT/metrics.json and OUT/confusion.png. There is no
GPU step: the model is ~30 weights a label and fits in well under a second; decoding is the
time.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.emotions import TO_SHARED, to_shared
from core.errors import InputError
from core.metrics import classification_report
from models.audio.codec import AUDIO_SUFFIXES
from models.emotion.prosody import FEATURES, features
from models.emotion.voice import C, MODEL_FILE
from models.tools import DataError


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    where: str  # "line 3" of a JSONL file, or the file's path in a folder


def load_clips(data: Path) -> list[Clip]:
    if data.is_dir():
        clips = [Clip(path, _label(folder.name, f"folder {folder.name}"), str(path.relative_to(data)))
                 for folder in sorted(p for p in data.iterdir() if p.is_dir())
                 for path in sorted(folder.iterdir()) if path.suffix.lower() in AUDIO_SUFFIXES]
    elif data.is_file():
        clips = [_clip(line, number, data.parent)
                 for number, line in enumerate(data.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    else:
        raise DataError(f"no data at {data}")
    if not clips:
        raise DataError(f"no audio clips found in {data}")
    counts = {label: sum(c.label == label for c in clips) for label in {c.label for c in clips}}
    if len(counts) < 2:
        raise DataError(f"every clip is labelled {next(iter(counts))}: a classifier needs two labels or more")
    few = sorted(label for label, n in counts.items() if n < 3)
    if few:
        raise DataError(f"too few clips labelled {', '.join(few)}: each label needs 3 or more "
                        "(two to learn from, one to check)")
    return clips


def _clip(line: str, number: int, base: Path) -> Clip:
    where = f"line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not JSON ({error.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("audio"), str):
        raise DataError(f'{where}: needs "audio", the path of a clip')
    labels = row.get("labels") or ([row["label"]] if row.get("label") else [])
    if not labels or not isinstance(labels[0], str):
        raise DataError(f'{where}: needs "label" (or "labels")')
    path = base / row["audio"]
    if not path.is_file():
        raise DataError(f"{where}: no audio file at {path}")
    return Clip(path, _label(labels[0], where), where)


def _label(label: str, where: str) -> str:
    if label.lower() not in TO_SHARED:
        raise DataError(f"{where}: {label!r} is no emotion Heartline knows (e.g. angry, happy, "
                        "neutral, sad, fearful, surprised)")
    return label.lower()


def read_features(clips: list[Clip], checkpoint: Path, max_seconds: float) -> np.ndarray:
    """Each clip's prosody, from the checkpoint when an earlier run read it already."""
    from tqdm import tqdm

    from models.audio.codec import PyAvCodec

    done = {}
    if checkpoint.is_file():
        for line in checkpoint.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row["features"]
    codec, rows = PyAvCodec(), []
    if done:
        print(f"resuming: {sum(_key(c) in done for c in clips)} of {len(clips)} clips read before",
              file=sys.stderr)
    with open(checkpoint, "a") as out:
        for clip in tqdm(clips, desc="reading clips", unit="clip", file=sys.stderr, disable=False):
            key = _key(clip)
            if key not in done:
                try:
                    audio = codec.decode(clip.path.read_bytes(), None, max_seconds)
                except InputError as error:
                    raise DataError(f"{clip.where}: {error}") from None
                row = features(audio)
                if row is None:
                    raise DataError(f"{clip.where}: there is no speech in it")
                done[key] = [float(value) for value in row]
                out.write(json.dumps({"key": key, "features": done[key]}) + "\n")
                out.flush()
            rows.append(done[key])
    return np.array(rows, dtype=float)


def _key(clip: Clip) -> str:
    stat = clip.path.stat()
    return f"{clip.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def train(data: Path, out: Path, validation: float = 0.2, seed: int = 0,
          max_seconds: float = 300.0) -> dict:
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.tools.plots import draw_confusion

    clips = load_clips(data)
    out.mkdir(parents=True, exist_ok=True)
    rows, labels = read_features(clips, out / "features.jsonl", max_seconds), [c.label for c in clips]
    held = max(len(set(labels)), round(validation * len(clips)))
    fit_rows, check_rows, fit_labels, check_labels = train_test_split(
        rows, labels, test_size=held, stratify=labels, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    model.fit(fit_rows, fit_labels)
    shared = [to_shared(label) for label in check_labels]
    report = classification_report(shared, [to_shared(label) for label in model.predict(check_rows)])
    report.update(modality="voice", data=str(data), model=f"prosody+logreg:{out.name}",
                  trained_on=len(fit_labels), validated_on=len(check_labels),
                  train_accuracy=round(float(model.score(fit_rows, fit_labels)), 4))
    partial = out / (MODEL_FILE + ".partial")
    joblib.dump({"model": model, "features": FEATURES}, partial)
    partial.rename(out / MODEL_FILE)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    draw_confusion(report, out / "confusion.png")
    return report
