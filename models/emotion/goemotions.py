"""Production text emotion: a transformers sequence classifier trained on GoEmotions, from disk.

The model is multi-label (each of the 28 labels is its own yes/no), so scores are sigmoids,
not a softmax: a message can be both grateful and relieved. `heartline models fetch
--text-emotion goemotions` puts SamLowe/roberta-base-go_emotions in the model cache; any
local directory with the same shape (labels in `config.id2label`) works.
"""

from __future__ import annotations

from pathlib import Path

from core.turn import EmotionScore

# Below this, a label is not really there; when none reaches it the message reads neutral.
PRESENT = 0.25
MAX_TOKENS = 256  # chat messages; longer ones are cut rather than refused


class SequenceClassifierEmotionReader:
    def __init__(self, model_dir: Path, device: str = "cpu", top_k: int = 3) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
        self.model = model.to(device).eval()
        self.labels = [model.config.id2label[i].lower() for i in range(model.config.num_labels)]
        self.device = device
        self.top_k = top_k
        self.name = Path(model_dir).name

    def read(self, text: str) -> list[EmotionScore]:
        inputs = self.tokenizer(text, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with self.torch.inference_mode():
            logits = self.model(**inputs.to(self.device)).logits[0]
        scores = self.torch.sigmoid(logits.float()).tolist()
        ranked = sorted(zip(self.labels, scores), key=lambda pair: -pair[1])
        present = [(label, score) for label, score in ranked[: self.top_k] if score >= PRESENT]
        if not present:
            return [EmotionScore("neutral", round(1.0 - ranked[0][1], 4))]
        return [EmotionScore(label, round(score, 4)) for label, score in present]
