"""`heartline eval emotion`: how well a reader does on a labelled set, scored in the shared space.

Text sets are JSONL ({"text", "labels"}); image sets are a folder per label; voice sets either,
as JSONL ({"audio": a path relative to the JSONL file, "labels"}) or a folder per label. Labels
may be any reader's fine labels or shared-space labels. The report is printed, written as JSON
and drawn as a confusion-matrix PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

from config.settings import Settings
from core.emotions import Reading, fuse, to_shared
from core.errors import InputError
from core.metrics import classification_report
from models.audio.codec import AUDIO_SUFFIXES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def text_samples(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["text"], to_shared(row["labels"][0])) for row in rows]


def folder_samples(folder: Path, suffixes: set[str] = IMAGE_SUFFIXES) -> list[tuple[Path, str]]:
    return [(image, to_shared(label_dir.name))
            for label_dir in sorted(p for p in folder.iterdir() if p.is_dir())
            for image in sorted(label_dir.iterdir()) if image.suffix.lower() in suffixes]


def audio_samples(data: Path) -> list[tuple[Path, str]]:
    if data.is_dir():
        return folder_samples(data, AUDIO_SUFFIXES)
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = [(data.parent / row["audio"], to_shared(row["labels"][0])) for row in rows]
    missing = [str(clip) for clip, _ in samples if not clip.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} audio files are missing, e.g. {missing[0]}")
    return samples


def evaluate(modality: str, data: Path, settings: Settings) -> dict:
    from config import wiring

    wiring.offline_environment(settings)
    gold, predicted = [], []
    if modality == "text":
        reader = wiring.text_emotion_reader(settings)
        for text, label in text_samples(data):
            gold.append(label)
            predicted.append(fuse([Reading("text", tuple(reader.read(text)))], {}).primary_emotion)
    elif modality == "face":
        reader = wiring.face_emotion_reader(settings)
        for image, label in folder_samples(data):
            gold.append(label)
            try:
                reading = reader.read(image.read_bytes())
            except InputError:
                reading = None
            predicted.append(to_shared(reading.emotion) if reading else "none")
    else:
        from models.audio.codec import PyAvCodec

        reader, codec = wiring.voice_emotion_reader(settings), PyAvCodec()
        if reader is None:
            raise ValueError("voice emotion is switched off (HEARTLINE_VOICE_EMOTION_BACKEND=none)")
        for clip, label in audio_samples(data):
            gold.append(label)
            try:
                audio = codec.decode(clip.read_bytes(), None, settings.max_audio_seconds)
                predicted.append(to_shared(reader.read(audio).emotion))
            except InputError:
                predicted.append("none")
    if not gold:
        raise ValueError(f"no labelled samples found in {data}")
    report = classification_report(gold, predicted)
    report.update(modality=modality, data=str(data), model=reader.name)
    return report


def describe(report: dict) -> str:
    lines = [f"{report['modality']} emotion, {report['samples']} samples ({report['model']})",
             f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f}",
             f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}"]
    for label, s in report["per_class"].items():
        lines.append(f"{label:<10} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f} {s['support']:>5}")
    return "\n".join(lines)
