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


def draw_timeline(analysis: dict, path: Path) -> None:
    """Each speaker's emotion over the recording: one row per speaker, a bar per utterance
    coloured by its emotion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"anger": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "joy": "#f2b701",
               "sadness": "#1f77b4", "surprise": "#17becf", "neutral": "#b0b0b0"}
    speakers = [s["speaker"] for s in analysis["speakers"]]
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.6 * len(speakers)))
    for row, speaker in enumerate(speakers):
        for u in (u for u in analysis["utterances"] if u["speaker"] == speaker):
            axes.barh(row, u["end"] - u["start"], left=u["start"], height=0.6,
                      color=colours.get(u["emotion"], "#444444"), alpha=0.4 + 0.6 * u["confidence"])
    axes.set_yticks(range(len(speakers)), speakers)
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    used = sorted({u["emotion"] for u in analysis["utterances"]})
    if used:  # a recording with no speech has nothing to key
        axes.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours.get(e, "#444444")) for e in used],
                    labels=used, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.set_title("emotion by speaker (paler: less sure)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
