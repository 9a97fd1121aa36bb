"""The rule-based reply: what answers when the model fails, or none of its replies passes.

It reflects the user's own words back ("you had to put your old dog to sleep today"), the way a
listener shows they heard, inside a frame that fits the feeling and the persona; when the user
asks about something they said before, it repeats what they said. Frames are drawn at random and
never the same twice in a row for one user. Messages in a few other languages get a short line
in that language.
"""

from __future__ import annotations

import random
import re
from threading import Lock

from core.reply_checks import (
    CLEARLY_HAPPY,
    asks_about_the_past,
    content_stems,
    key_terms,
    recalled_for,
)
from core.turn import ReplyRequest

# {r} is the user's words turned toward them, {R} the same starting with a capital.
_FRAMES: dict[str, tuple[str, ...]] = {
    "sadness": (
        "I'm so sorry. {R}, and that really hurts.",
        "Oh no. {R}. That's a heavy thing to carry, and I'm here with you.",
        "That sounds really hard. {R}, and it makes sense that you feel low.",
        "I'm sorry you're going through this. {R}. Take all the time you need.",
    ),
    "fear": (
        "That sounds scary. {R}, and it makes sense to feel anxious.",
        "{R}, and feeling nervous about that is so understandable. You're not alone with it.",
        "That's a lot to worry about. {R}. Let's take it one step at a time.",
    ),
    "anger": (
        "That's so frustrating. {R}, and it makes sense that you're upset.",
        "{R}. Anyone would be annoyed by that, and you have every right to be.",
        "Ugh, that sounds unfair. {R}, and your frustration makes sense.",
    ),
    "disgust": (
        "Ugh, that sounds awful. {R}, and it's not okay.",
        "That sounds really unpleasant. {R}, and I'd be put off too.",
    ),
    "joy": (
        "That's wonderful! {R}, and you deserve it.",
        "Oh, that's great news. {R}!",
        "I love hearing that. {R}, and that's a real win.",
    ),
    "surprise": (
        "Wow, {r}! I didn't see that coming.",
        "No way. {R}? What a surprise.",
    ),
    "neutral": (
        "I hear you. {R}.",
        "Thanks for telling me. {R}.",
        "Okay, {r}. I'm listening.",
    ),
}
# One gentle question, sometimes.
_QUESTIONS: dict[str, tuple[str, ...]] = {
    "sadness": ("Do you want to tell me more about it?", "How are you holding up?"),
    "fear": ("What worries you most about it?", "What would help right now?"),
    "anger": ("What happened next?", "Do you want to talk it through?"),
    "disgust": ("What happened?",),
    "joy": ("How are you celebrating?", "What was the best part?"),
    "surprise": ("How do you feel about it?",),
    "neutral": ("Tell me more?", "What's on your mind about it?"),
}
# When the words cannot be reflected (a question, a very long message, words about Heartline).
_PLAIN: dict[str, tuple[str, ...]] = {
    "sadness": ("I'm so sorry you're feeling this way. I'm here with you.",
                "That sounds really hard. I'm here, and I'm listening."),
    "fear": ("That sounds scary. You're not alone with it.",
             "It's understandable to feel anxious. Let's take it one step at a time."),
    "anger": ("That sounds really frustrating. I'm listening.",
              "It makes sense to be upset about that. Want to talk it through?"),
    "disgust": ("That sounds really unpleasant. I'm sorry you had to deal with it.",),
    "joy": ("That's wonderful to hear! Tell me more.", "I love that! What made it happen?"),
    "surprise": ("Wow, that's unexpected! How do you feel about it?",),
    "neutral": ("I'd like to help with that. Tell me a little more about what you have in mind.",
                "Good question. What would be most useful for you right now?",
                "I'm listening. Tell me more."),
}
_RECALL = ("You told me {m}.", "You mentioned that {m}.", "From what you told me, {m}.")
_TUTOR = " We can work through it together."
# A short line where the words are in another language, by feeling family.
_OTHER_LANGUAGES: dict[str, dict[str, str]] = {
    "es": {"sad": "Lo siento mucho. Estoy aquí contigo.", "glad": "¡Qué buena noticia! Cuéntame más.",
           "calm": "Te escucho. Cuéntame más."},
    "fr": {"sad": "Je suis vraiment désolé. Je suis là avec toi.", "glad": "Quelle bonne nouvelle ! Raconte-moi.",
           "calm": "Je t'écoute. Dis-m'en plus."},
    "de": {"sad": "Das tut mir wirklich leid. Ich bin für dich da.", "glad": "Wie schön! Erzähl mir mehr.",
           "calm": "Ich höre dir zu. Erzähl mir mehr."},
    "pt": {"sad": "Sinto muito. Estou aqui com você.", "glad": "Que notícia boa! Conta mais.",
           "calm": "Estou ouvindo. Conta mais."},
    "it": {"sad": "Mi dispiace tanto. Sono qui con te.", "glad": "Che bella notizia! Raccontami.",
           "calm": "Ti ascolto. Raccontami di più."},
}
_FAMILY = {"sadness": "sad", "fear": "sad", "anger": "sad", "disgust": "sad", "joy": "glad",
           "surprise": "glad", "neutral": "calm"}

_TURNED = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "we": "you",
    "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves", "i'm": "you're",
    "im": "you're", "i've": "you've", "ive": "you've", "i'd": "you'd", "i'll": "you'll",
    "we're": "you're", "we've": "you've", "we'll": "you'll", "am": "are",
}
_FILLER = re.compile(r"^((ugh|omg|so|well|honestly|lol|hey|guess what|oh|wow|yay|um|hmm|ok|okay|"
                     r"just so you know|today|tbh)\b[\s,!.:-]*)+", re.IGNORECASE)
_ABOUT_HEARTLINE = re.compile(r"\b(you|your|you're|yourself|heartline)\b", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.!?;]|\s(but|because|though|although)\s|,\s", re.IGNORECASE)
MAX_WORDS = 16
_COMMON_STARTS = frozenset("the a an this that these those it its there they he she today "
                           "yesterday tonight someone somebody everyone everybody nobody all "
                           "got just finally still after before when last".split())


def turned(text: str) -> str:
    """Every word turned toward the user: "my son Ravi is a size 2" -> "your son Ravi is a size 2"."""
    out, after_i = [], False
    for word in text.split():
        bare = word.lower().strip(",")
        out.append("were" if bare == "was" and after_i else _TURNED.get(bare, word))
        after_i = bare in ("i", "we")
    if out and out[0].lower() in _COMMON_STARTS:  # a name keeps its capital; "The vet" does not
        out[0] = out[0].lower()
    return " ".join(out).rstrip(".!?,")


def recalled_part(memory: str, user_text: str) -> str:
    """The sentence of an earlier message that holds what is asked about, turned toward the user:
    the one sharing most words with the question, else the one with the most names in it."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(memory.split())) if s.strip()]
    asked = content_stems(user_text)
    best = max(sentences, key=lambda s: (len(asked & content_stems(s)), len(key_terms(s, user_text))))
    return turned(_FILLER.sub("", best) or best)


def reflect(text: str) -> str | None:
    """The first thing the user said, turned toward them: "I failed my test" -> "you failed
    your test". None when there is nothing that reads well reflected."""
    text = _FILLER.sub("", " ".join(text.replace("\u2019", "'").split()))
    if not text or text.rstrip().endswith("?") or _ABOUT_HEARTLINE.search(text):
        return None
    first = _CLAUSE_END.split(text, maxsplit=1)[0]
    clause = first.strip(" ,-")
    words = clause.split()
    if not 3 <= len(words) <= MAX_WORDS or text[len(first):].startswith("?"):
        return None  # "how can I say it? with my real job" is a question, not news to reflect
    return turned(clause)


class RuleBasedReplies:
    name = "rule-based"

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._last: dict[str, str] = {}
        self._lock = Lock()

    def generate(self, request: ReplyRequest) -> str:
        context, feeling = request.context, request.emotion.primary_emotion
        feeling = feeling if feeling in _FRAMES else "neutral"
        if feeling in ("joy", "surprise") and request.emotion.confidence < CLEARLY_HAPPY:
            feeling = "neutral"  # "that's great news!" wounds someone only maybe happy
        if context.language in _OTHER_LANGUAGES:
            return _OTHER_LANGUAGES[context.language][_FAMILY[feeling]]
        with self._lock:
            reply = self._compose(request, feeling)
            for _ in range(3):  # a different line from last time, if the dice allow
                if reply != self._last.get(request.user_key):
                    break
                reply = self._compose(request, feeling)
            self._last[request.user_key] = reply
        return reply

    def _compose(self, request: ReplyRequest, feeling: str) -> str:
        pick = self._random.choice
        context = request.context
        memory = recalled_for(context)
        recalled = memory and recalled_part(memory, context.user_text)
        if recalled and asks_about_the_past(context.user_text):
            return pick(_RECALL).format(m=recalled) + (" " + pick(_QUESTIONS[feeling])
                                                       if feeling != "neutral" else "")
        if recalled:  # it leans on what they said: hear it, and show it was remembered
            return pick(_PLAIN[feeling]) + " " + pick(_RECALL).format(m=recalled)
        reflected = reflect(request.context.user_text)
        if reflected is None:
            reply = pick(_PLAIN[feeling])
        else:
            reply = pick(_FRAMES[feeling]).format(r=reflected, R=reflected[0].upper() + reflected[1:])
            if self._random.random() < 0.5 and "?" not in reply:
                reply += " " + pick(_QUESTIONS[feeling])
        if request.persona == "tutor" and feeling in ("fear", "neutral", "sadness"):
            reply += _TUTOR
        return reply
