"""Text as a voice should read it: numbers, symbols and abbreviations spelled out (English).

The synthesizer's own front end guesses at "3:30", "$5" or "Dr."; spelling them out first
makes the reply sound the same whatever engine speaks it.
"""

from __future__ import annotations

import re

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}

ABBREVIATIONS = {
    "dr.": "doctor", "mr.": "mister", "mrs.": "missus", "ms.": "miz", "prof.": "professor",
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus",
    "approx.": "approximately", "min.": "minutes", "hrs": "hours", "km": "kilometres",
    "kg": "kilograms", "asap": "as soon as possible", "btw": "by the way", "tbh": "to be honest",
    "idk": "I don't know", "imo": "in my opinion",
}
_SYMBOLS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "/": " or "}
_CURRENCIES = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}

_URL = re.compile(r"https?://\S+|www\.\S+")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\u200d\ufe0f\u2b50\u2b06-\u2b07]"
)
_ABBREVIATION = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?!\w)",
    re.IGNORECASE,
)
_MONEY = re.compile(r"([$£€])(\d[\d,]*)(?:\.(\d{2}))?")
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER = re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\b")


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            tail = "" if not rest else (" and " if rest < 100 else " ") + number_words(rest)
            return f"{number_words(head)} {name}{tail}"
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    words = number_words(n)
    head, _, last = words.rpartition(" ")
    last_head, dash, last_word = last.rpartition("-")
    if last_word in _ORDINAL_WORDS:
        last_word = _ORDINAL_WORDS[last_word]
    elif last_word.endswith("y"):
        last_word = last_word[:-1] + "ieth"
    else:
        last_word += "th"
    return f"{head} {last_head}{dash}{last_word}".strip()


def _money(match: re.Match) -> str:
    one, many = _CURRENCIES[match[1]]
    whole = int(match[2].replace(",", ""))
    spoken = f"{number_words(whole)} {one if whole == 1 else many}"
    if match[3] and int(match[3]):
        spoken += f" {number_words(int(match[3]))}"
    return spoken


def _time(match: re.Match) -> str:
    hours, minutes = int(match[1]), int(match[2])
    if minutes == 0:
        return f"{number_words(hours)} o'clock"
    return f"{number_words(hours)} {'oh ' if minutes < 10 else ''}{number_words(minutes)}"


def _decimal(match: re.Match) -> str:
    return f"{number_words(int(match[1]))} point {' '.join(_ONES[int(d)] for d in match[2])}"


def without_links_and_emoji(text: str) -> str:
    return _EMOJI.sub("", _URL.sub("", text))


def speakable(text: str, language: str | None = "en") -> str:
    """`text` rewritten to be read aloud. Links and emoji always go; spelling out is English-only."""
    text = without_links_and_emoji(text)
    if language in (None, "en"):
        text = _ABBREVIATION.sub(lambda m: ABBREVIATIONS[m[1].lower()], text)
        text = _MONEY.sub(_money, text)
        text = _TIME.sub(_time, text)
        text = _PERCENT.sub(lambda m: f"{m[1]} percent", text)
        text = _ORDINAL.sub(lambda m: ordinal_words(int(m[1])), text)
        text = _DECIMAL.sub(_decimal, text)
        text = _NUMBER.sub(lambda m: number_words(int(m[0].replace(",", ""))), text)
        for symbol, words in _SYMBOLS.items():
            text = text.replace(symbol, words)
    return " ".join(text.split())
