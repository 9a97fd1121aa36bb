"""`heartline analyze --ground-truth`: an analysis scored against what really happened.

Ground truth is JSON of {"utterances": [{"speaker", "start", "end", "emotion"}]}. Diarization
is scored by pyannote.metrics' diarization error rate (missed speech, false alarms and speaker
confusion over the reference's duration, speakers matched optimally); emotions by pairing each
reference utterance with the analysed utterance that overlaps it most, then accuracy, per-class
recall and macro-F1 in the shared space.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.emotions import to_shared
from core.metrics import classification_report
from models.tools import DataError


def load_truth(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["utterances"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not JSON with an \"utterances\" list ({error})") from None
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not {"speaker", "start", "end", "emotion"} <= set(row):
            raise DataError(f"{path}: utterance {n} needs speaker, start, end and emotion")
        if not float(row["start"]) < float(row["end"]):
            raise DataError(f"{path}: utterance {n} ends before it starts")
    return rows


def score(analysis: dict, truth: list[dict]) -> dict:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for n, row in enumerate(truth):
        reference[Segment(float(row["start"]), float(row["end"])), n] = str(row["speaker"])
    for n, u in enumerate(analysis["utterances"]):
        hypothesis[Segment(u["start"], u["end"]), n] = u["speaker"]
    extent = reference.get_timeline().extent()
    if analysis["utterances"]:
        extent = extent | hypothesis.get_timeline().extent()
    der = DiarizationErrorRate(collar=0.0)(reference, hypothesis, detailed=True, uem=Timeline([extent]))

    gold, predicted = [], []
    for row in truth:
        start, end = float(row["start"]), float(row["end"])
        overlaps = [(min(end, u["end"]) - max(start, u["start"]), u) for u in analysis["utterances"]]
        best = max(overlaps, key=lambda pair: pair[0], default=(0.0, None))
        gold.append(to_shared(row["emotion"]))
        predicted.append(best[1]["emotion"] if best[1] is not None and best[0] > 0 else "none")
    report = classification_report(gold, predicted)
    return {
        "diarization_error_rate": round(der["diarization error rate"], 4),
        "missed_speech_s": round(der["missed detection"], 2), "false_alarm_s": round(der["false alarm"], 2),
        "speaker_confusion_s": round(der["confusion"], 2),
        "speakers": {"true": len({row["speaker"] for row in truth}), "found": len(analysis["speakers"])},
        "emotion_accuracy": report["accuracy"], "emotion_macro_f1": report["macro_f1"],
        "emotion_recall": {label: s["recall"] for label, s in report["per_class"].items()},
        "confusion": report["confusion"],
    }
