"""Toxicity scores from alt-profanity-check (a linear model shipped in its wheel)."""

from __future__ import annotations


class ProfanityChecker:
    name = "alt-profanity-check"

    def __init__(self) -> None:
        # The package loads its model at import time: import here so it happens once, in the worker.
        from profanity_check import predict_prob

        self._predict = predict_prob

    def scores(self, text: str) -> dict[str, float]:
        return {"profanity": float(self._predict([text])[0])}
