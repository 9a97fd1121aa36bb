"""Pictures of evaluation and training reports."""

from __future__ import annotations

from pathlib import Path


def draw_confusion(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = list(report["confusion"])
    columns = list(next(iter(report["confusion"].values())))
    counts = [[report["confusion"][g][p] for p in columns] for g in rows]
    figure, axes = plt.subplots(figsize=(1.2 + 0.8 * len(columns), 1 + 0.7 * len(rows)))
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel("predicted")
    axes.set_ylabel("labelled")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axes.text(j, i, count, ha="center", va="center", fontsize=8)
    axes.set_title(f"{report['modality']}: accuracy {report['accuracy']:.2f}, macro-F1 {report['macro_f1']:.2f}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
