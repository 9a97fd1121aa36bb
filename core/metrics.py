"""Classification figures for `heartline eval`: accuracy, macro-F1, per-class scores, confusion."""

from __future__ import annotations

from collections import Counter


def classification_report(gold: list[str], predicted: list[str]) -> dict:
    """Scores over the gold labels' classes; a prediction outside them (e.g. "none") only hurts."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted labels differ in length")
    classes = sorted(set(gold))
    pairs = Counter(zip(gold, predicted))
    per_class = {}
    for label in classes:
        true_positive = pairs[(label, label)]
        predicted_as = sum(n for (_, p), n in pairs.items() if p == label)
        support = sum(n for (g, _), n in pairs.items() if g == label)
        precision = true_positive / predicted_as if predicted_as else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": support}
    columns = sorted(set(classes) | set(predicted))
    return {
        "samples": len(gold),
        "accuracy": round(sum(pairs[(c, c)] for c in classes) / len(gold), 4) if gold else 0.0,
        "macro_f1": round(sum(s["f1"] for s in per_class.values()) / len(classes), 4) if classes else 0.0,
        "per_class": per_class,
        "confusion": {g: {p: pairs[(g, p)] for p in columns} for g in classes},
    }
