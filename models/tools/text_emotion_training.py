"""`heartline train text-emotion`: the text-emotion reader on your own labelled messages.

Data, refused with the line and the reason when a row cannot be used:
- JSONL of {"text", "labels": [...]} (or "label"), the project's own format;
- GoEmotions as it is published: the raw CSVs (`goemotions_1.csv`..., a 0/1 column per label;
  rows raters marked very unclear are skipped) or the simplified TSVs (`train.tsv`: text, label
  ids, id);
- a CSV with a `text` column and a `label` or `labels` column (several joined by `,` or `;`).

Every label is mapped to the shared space the fusion uses (GoEmotions' 27 emotions and neutral
as its authors grouped them). A stratified validation share is kept aside.

Two models:
- by default, the packaged reader's own head (MiniLM embedding and n-grams into a logistic
  regression) fitted on your rows: OUT/head.joblib, loaded with HEARTLINE_TEXT_EMOTION_MODEL_DIR;
- with `--base DIR`, a transformers encoder fine-tuned as a multi-label classifier: per-epoch
  validation loss and macro/micro F1, early stopping on macro-F1 with the best epoch kept,
  checkpoints each epoch (a stopped run resumes), mixed precision on a GPU. OUT is then a
  classifier directory, loaded with HEARTLINE_TEXT_EMOTION_BACKEND=goemotions and
  HEARTLINE_TEXT_EMOTION_MODEL_DIR.
Both write OUT/metrics.json and OUT/confusion.png (the main label against the top prediction).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.emotions import TO_SHARED, to_shared
from core.metrics import classification_report
from models.tools import DataError

log = logging.getLogger(__name__)

# GoEmotions' labels in the order of its emotions.txt, which the simplified TSVs' ids index.
GOEMOTIONS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral")
PRESENT = 0.5  # a multi-label score from here up counts as a label the message carries


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]  # in the shared space, the main one first


@dataclass(frozen=True)
class Options:
    validation: float = 0.1
    seed: int = 0
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    patience: int = 2  # epochs without a better macro-F1 before stopping
    max_steps: int = -1


def load_examples(path: Path) -> tuple[list[Example], int]:
    """The usable examples, and how many rows were skipped as GoEmotions marks them unclear."""
    if not path.is_file():
        raise DataError(f"no data file at {path}")
    with open(path, encoding="utf-8", newline="") as file:
        lines = file.read().splitlines()
    if path.suffix.lower() in (".jsonl", ".json"):
        examples, skipped = [_json_row(line, n) for n, line in enumerate(lines, 1) if line.strip()], 0
    elif path.suffix.lower() == ".tsv":
        examples, skipped = [_tsv_row(line, n) for n, line in enumerate(lines, 1) if line.strip()], 0
    elif path.suffix.lower() == ".csv":
        examples, skipped = _csv_rows(lines)
    else:
        raise DataError(f"{path.name}: give JSONL, GoEmotions' CSV or TSV, or a CSV of text and label")
    if len({e.labels[0] for e in examples}) < 2:
        raise DataError("the examples carry fewer than two emotions: nothing to tell apart")
    return examples, skipped


def _shared(labels: list[str], where: str) -> tuple[str, ...]:
    if not labels:
        raise DataError(f"{where}: no label")
    unknown = [label for label in labels if label.strip().lower() not in TO_SHARED]
    if unknown:
        raise DataError(f"{where}: {unknown[0]!r} is no emotion Heartline knows (GoEmotions' 28 labels, "
                        "Ekman's six or neutral)")
    return tuple(dict.fromkeys(to_shared(label.strip()) for label in labels))


def _text(text, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: no text")
    return text.strip()


def _json_row(line: str, number: int) -> Example:
    where = f"line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f'{where}: a row is an object with "text" and "labels"')
    labels = row.get("labels") or ([row["label"]] if row.get("label") else [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise DataError(f'{where}: "labels" is a list of names')
    return Example(_text(row.get("text"), where), _shared(labels, where))


def _tsv_row(line: str, number: int) -> Example:
    where = f"line {number}"
    fields = line.split("\t")
    if len(fields) < 2:
        raise DataError(f"{where}: GoEmotions' TSV rows are text, label ids, id")
    try:
        labels = [GOEMOTIONS[int(i)] for i in fields[1].split(",")]
    except (ValueError, IndexError):
        raise DataError(f"{where}: label ids are numbers 0-27, not {fields[1]!r}") from None
    return Example(_text(fields[0], where), _shared(labels, where))


def _csv_rows(lines: list[str]) -> tuple[list[Example], int]:
    reader = csv.DictReader(lines)
    columns = set(reader.fieldnames or ())
    if "text" not in columns:
        raise DataError("line 1: a CSV needs a text column")
    raw = set(GOEMOTIONS) <= columns
    if not raw and not columns & {"label", "labels"}:
        raise DataError("line 1: a CSV needs a label (or labels) column, or GoEmotions' 28 label columns")
    examples, skipped = [], 0
    for number, row in enumerate(reader, 2):
        where = f"line {number}"
        if raw:
            if row.get("example_very_unclear", "").strip().lower() in ("true", "1"):
                skipped += 1
                continue
            labels = [name for name in GOEMOTIONS if (row.get(name) or "").strip() == "1"]
        else:
            labels = [p for p in (row.get("labels") or row.get("label") or "").replace(";", ",").split(",") if p.strip()]
        examples.append(Example(_text(row.get("text"), where), _shared(labels, where)))
    return examples, skipped


def split(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified by the main label, so every emotion is checked."""
    from sklearn.model_selection import train_test_split

    main = [e.labels[0] for e in examples]
    rare = sorted(label for label in set(main) if main.count(label) < 2)
    if rare:
        raise DataError(f"only one example of {', '.join(rare)}: each emotion needs two or more "
                        "(one to learn from, one to check)")
    held = max(len(set(main)), round(share * len(examples)))
    if len(examples) - held < len(set(main)):
        raise DataError(f"{len(examples)} examples are too few to keep {held} aside for checking")
    fit, check = train_test_split(examples, test_size=held, stratify=main, random_state=seed)
    return list(fit), list(check)


def scores(check: list[Example], labels: list[str], probabilities: np.ndarray, multi_label: bool) -> dict:
    """Macro and micro F1 over the labels each message carries, and the main label's report."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    top = probabilities.argmax(axis=1)
    chosen = [{labels[i] for i, p in enumerate(row) if p >= PRESENT} | {labels[best]}
              if multi_label else {labels[best]} for row, best in zip(probabilities, top)]
    binarizer = MultiLabelBinarizer(classes=sorted(set(labels) | {l for e in check for l in e.labels}))
    gold, predicted = binarizer.fit_transform([e.labels for e in check]), binarizer.transform(chosen)
    report = classification_report([e.labels[0] for e in check], [labels[i] for i in top])
    report.update(micro_f1_labels=round(float(f1_score(gold, predicted, average="micro", zero_division=0)), 4),
                  macro_f1_labels=round(float(f1_score(gold, predicted, average="macro", zero_division=0)), 4))
    return report


def train_head(fit: list[Example], check: list[Example], encoder, out: Path) -> dict:
    from models.emotion.minilm import TrainedEmotionReader

    reader = TrainedEmotionReader(encoder)
    log.info("fitting the head on %d examples", len(fit))
    reader.fit([(e.text, list(e.labels), 1.0) for e in fit])
    reader.save(out)
    report = scores(check, reader.labels, reader.probabilities([e.text for e in check]), multi_label=False)
    report.update(model=f"{encoder.name}+ngrams+head:{out.name}", epochs=[])
    return report


def train_classifier(fit: list[Example], check: list[Example], base: Path, out: Path, options: Options) -> dict:
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              EarlyStoppingCallback, Trainer, TrainingArguments)
    from transformers.trainer_utils import get_last_checkpoint

    labels = sorted({label for e in fit + check for label in e.labels})
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, local_files_only=True, num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True)  # a new head over the encoder

    def encoded(examples: list[Example]) -> list[dict]:
        rows = []
        for e in examples:
            row = dict(tokenizer(e.text, truncation=True, max_length=128))
            row["labels"] = [1.0 if label in e.labels else 0.0 for label in labels]
            rows.append(row)
        return rows

    def metrics(prediction) -> dict:
        probabilities = 1 / (1 + np.exp(-prediction.predictions))
        report = scores(check, labels, probabilities, multi_label=True)
        return {"macro_f1": report["macro_f1_labels"], "micro_f1": report["micro_f1_labels"]}

    cuda = torch.cuda.is_available()
    checkpoints = out / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=options.epochs, max_steps=options.max_steps,
        learning_rate=options.learning_rate, per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=options.patience + 1, load_best_model_at_end=True,
        metric_for_best_model="macro_f1", greater_is_better=True,
        fp16=cuda, use_cpu=not cuda,  # mixed precision on a GPU; CPUs train in float32
        report_to=[], seed=options.seed, dataloader_num_workers=0, disable_tqdm=False, logging_steps=10)
    trainer = Trainer(model=model, args=args, train_dataset=encoded(fit), eval_dataset=encoded(check),
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics,
                      callbacks=[EarlyStoppingCallback(early_stopping_patience=options.patience)])
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(out)
    epochs = [{"epoch": row["epoch"], "val_loss": round(row["eval_loss"], 4),
               "macro_f1": row["eval_macro_f1"], "micro_f1": row["eval_micro_f1"]}
              for row in trainer.state.log_history if "eval_macro_f1" in row]
    logits = trainer.predict(encoded(check)).predictions
    report = scores(check, labels, 1 / (1 + np.exp(-logits)), multi_label=True)
    report.update(model=out.name, base=base.name, epochs=epochs, resumed_from=Path(last).name if last else None,
                  best_checkpoint=Path(trainer.state.best_model_checkpoint).name
                  if trainer.state.best_model_checkpoint else None)
    return report


def train(data: Path, out: Path, base: Path | None, encoder_of, options: Options = Options()) -> dict:
    """`encoder_of()` gives the packaged sentence encoder, asked for only when the head is trained."""
    from models.tools.plots import draw_confusion

    examples, skipped = load_examples(data)
    fit, check = split(examples, options.validation, options.seed)
    out.mkdir(parents=True, exist_ok=True)
    if base is None:
        report = train_head(fit, check, encoder_of(), out)
    else:
        report = train_classifier(fit, check, base, out, options)
    report.update(modality="text", data=str(data), trained_on=len(fit), validated_on=len(check),
                  skipped_unclear=skipped)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    draw_confusion(report, out / "confusion.png")
    return report
