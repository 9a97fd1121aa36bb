"""`heartline eval emotion` on tiny labelled sets whose figures are worked out by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from test_cli import heartline

SMILE = Path(__file__).parent / "data" / "smiling_face.jpg"


def test_text_eval_scores_in_the_shared_space(tmp_path, data_dir):
    rows = [
        {"text": "I am so happy today, this is the best day ever!", "labels": ["joy"]},
        {"text": "My grandmother died last night and I miss her so much.", "labels": ["grief"]},
        {"text": "I am furious, they lied to me again!", "labels": ["anger"]},
        {"text": "Yay, everything is wonderful and I feel great!", "labels": ["sadness"]},  # mislabelled
    ]
    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows))
    done = heartline("eval", "emotion", "--modality", "text", "--data", str(data), "--json",
                     "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["accuracy"] == 0.75
    assert report["per_class"]["sadness"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert report["per_class"]["joy"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert report["macro_f1"] == round((0.6667 + 0.6667 + 1.0) / 3, 4)
    assert report["confusion"]["sadness"]["joy"] == 1
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    assert (tmp_path / "out" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_face_eval_reads_a_folder_per_label(tmp_path, data_dir):
    for label, name in (("happy", "a.jpg"), ("happy", "b.png"), ("sad", "c.jpg"), ("neutral", "d.png")):
        (tmp_path / "faces" / label).mkdir(parents=True, exist_ok=True)
    shutil.copy(SMILE, tmp_path / "faces" / "happy" / "a.jpg")
    Image.open(SMILE).save(tmp_path / "faces" / "happy" / "b.png")
    shutil.copy(SMILE, tmp_path / "faces" / "sad" / "c.jpg")  # a smile labelled sad
    Image.new("RGB", (120, 120), "grey").save(tmp_path / "faces" / "neutral" / "d.png")  # no face
    done = heartline("eval", "emotion", "--modality", "face", "--data", str(tmp_path / "faces"), "--json")
    report = json.loads(done.stdout)
    assert report["samples"] == 4 and report["accuracy"] == 0.5
    assert report["per_class"]["joy"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["confusion"]["neutral"]["none"] == 1


def test_eval_says_clearly_what_is_wrong_with_the_data(tmp_path):
    missing = heartline("eval", "emotion", "--modality", "text", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no labelled data" in missing.stderr
    (tmp_path / "bad.jsonl").write_text('{"text": "hi"}\n')
    bad = heartline("eval", "emotion", "--modality", "text", "--data", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr
