"""What a reply a caring friend would give looks like, as checks.

The pipeline judges each generated reply with them before sending it, and `heartline eval reply`
counts with the same ones, so the figures it prints are what the pipeline enforces. Each check
reads words; the judge adds the project's readers (text emotion, sentence similarity, language).

A problem means the reply must never be sent (cheerful words for grief, "as an AI", the wrong
language, the line just said). A miss means a better reply should be looked for (it does not
acknowledge what the user said, or forgets the fact they asked about).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from num2words import num2words

from core.emotions import to_shared
from core.stages import LanguageIdentifier, SentenceEncoder, TextEmotionReader
from core.turn import ReplyContext

NEGATIVE = frozenset({"sadness", "fear", "anger", "disgust"})

_CHEERFUL = re.compile(
    r"\b(great|wonderful|awesome|amazing|fantastic|lovely|glad|happy|happily|fun|funny|congrat\w*|"
    r"exciting|excited|sweet|cute|nice|yay|hooray|woo+|delight\w*|brilliant|enjoy\w*|"
    r"celebrat\w*|adorable|cheer up|good for you|how nice|aww+|lol|haha\w*)\b", re.IGNORECASE)
_CONDOLENCE = re.compile(
    r"\b(sorry|condolences?|heartbreak\w*|tragic|devastat\w*|grief|griev\w*|my heart goes out|"
    r"must be (so )?(hard|difficult|painful)|that'?s (so )?(hard|tough|rough|awful|terrible))\b",
    re.IGNORECASE)
_SLIP = re.compile(
    r"\b(as an ai|an ai\b|a language model|language model|artificial intelligence|the user|"
    r"user's|as a chatbot|i'?m (just )?a (bot|chatbot|computer program|program)|"
    r"i (do not|don'?t) have (feelings|emotions)|i cannot feel|assistant:|heartline:|user:)",
    re.IGNORECASE)
_LECTURE = re.compile(
    r"(^|[.!?]\s+)(it'?s (very |really )?important (to|that)|remember (to|that)|make sure|"
    r"you (should|must|need to) |always |never )", re.IGNORECASE)
_WORD = re.compile(r"[a-zA-Z][a-zA-Z']+")

# Words that show a feeling was heard, by the family of the user's feeling.
_HEARD: dict[str, re.Pattern] = {
    "sadness": re.compile(
        r"\b(sorry|hard|heavy|hurt\w*|pain\w*|loss|lost|los(e|ing)|miss\w*|sad\w*|grie\w*|"
        r"heartbreak\w*|heartbroken|tough|rough|ache|aching|lonely|alone|difficult|gentle|"
        r"devastat\w*|drain\w*|defeat\w*|bittersweet|raw|numb|empty|mourn\w*|"
        r"down|low|struggl\w*|exhaust\w*|tired|disappoint\w*|upset\w*|awful|rotten|crushing|gutt?ed|"
        r"oh no|here (for|with) you|i'?m here|take your time|of course it)\b", re.IGNORECASE),
    "fear": re.compile(
        r"\b(scar\w*|nerv\w*|worr\w*|anxi\w*|frighten\w*|afraid|fear\w*|daunting|stress\w*|"
        r"understandabl\w*|natural|normal|breath\w*|safe\w*|overwhelm\w*|uneasy|unsettl\w*|"
        r"tense|panic\w*|on edge|not alone|one step|steady|calm\w*|butterflies|jitter\w*|"
        r"shak\w*|brave|oh no|hard|tough|i'?m here|with you)\b", re.IGNORECASE),
    "anger": re.compile(
        r"\b(frustrat\w*|unfair|annoy\w*|infuriat\w*|angry|anger|upset\w*|madden\w*|mad|rude|"
        r"wrong|disrespect\w*|fair|understandabl\w*|right to|livid|furious|irritat\w*|"
        r"ridiculous|out of order|not okay|not ok|unacceptable|exhaust\w*|sting\w*|ugh|"
        r"makes sense|no wonder|gut punch|insult\w*|hurt\w*|betray\w*|sorry)\b", re.IGNORECASE),
    "disgust": re.compile(
        r"\b(gross|ugh|awful|yuck|unpleasant|disgust\w*|vile|nasty|revolting|horrible|"
        r"horrid|foul|rank|sick\w*|stomach|cruel\w*|not okay|not ok|wrong|terrible|eww+|"
        r"appalling|shocking)\b", re.IGNORECASE),
    "joy": re.compile(
        r"\b(congrat\w*|wonderful|great|amazing|fantastic|proud|happy|exciting|excited|thrill\w*|"
        r"delight\w*|brilliant|awesome|love\w*|celebrat\w*|yay|huge|incredible|lovely|well done|"
        r"good news|so good|fabulous|superb|nice|glad|joy\w*|win|deserve\w*|big deal|"
        r"milestone|beautiful|sweet|fun|perfect|best)\b", re.IGNORECASE),
    "surprise": re.compile(
        r"\b(wow|unexpected\w*|surpris\w*|didn'?t see|whoa|out of nowhere|sudden\w*|believe|"
        r"no way|what a|shock\w*|twist|blindsid\w*|out of the blue|plot twist|oh my|really)\b",
        re.IGNORECASE),
}
_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves im ive id ill dont cant
didnt wont isnt wasnt really today got get go going went gonna wanna just like also still even
much many lot lots ok okay yeah yes hi hey oh um one thing things know think feel feeling
felt want need make made say said tell told way day time
""".split())
_PAST = re.compile(
    r"\b(remember|again|did i (tell|say|mention)|what did i|i told you|what('?s| is| was| were) "
    r"(my|the name)|who('?s| is| was) my|where (did|does|is|was) my|when('?s| is| was| did) my|"
    r"which \w+ (did|does|is|was)|do you (know|remember)|my \w+'?s name|name of my|"
    r"how old is my|what (city|town|day|date|time))\b", re.IGNORECASE)
_NAMEISH = re.compile(r"\b([A-Z][a-zA-Z'-]+|\d[\d:/.,]*\w*)\b")
_WEEKDAYS_MONTHS = re.compile(
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight|january|"
    r"february|march|april|may|june|july|august|september|october|november|december)\b",
    re.IGNORECASE)


def content_stems(text: str) -> set[str]:
    """The words that carry what a message is about, roughly stemmed ("dogs" and "dog" meet)."""
    stems = set()
    for word in _WORD.findall(text.lower().replace("\u2019", "'")):
        word = word.split("'")[0]
        if len(word) < 3 or word in _STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        if word.endswith("e") and len(word) > 3:  # move, moved, moving: "mov"
            word = word[:-1]
        stems.add(word[:6])
    return stems


_HARD_NEWS = re.compile(
    r"\b(died|dies|dead|death|passed away|funeral|memorial|put (him|her|them|it|\w+ \w+) to sleep|"
    r"cancer|tumou?r|diagnos\w*|terminal|miscarr\w*|stillborn|no heartbeat|divorc\w*|dumped|"
    r"broke up|fired|laid off|evict\w*|failed|rejected|hospital|icu|surgery|biopsy|lost (my|our)|"
    r"miss (him|her|them)|alone|lonely|scared|terrified|panic\w*|attack\w*|abus\w*|crying|cried)\b",
    re.IGNORECASE)


# A cheerful reply to someone who is hurting does more harm than a gentle one to someone mildly
# pleased: when the words read this much sad, scared or angry and not clearly happy, the reply
# fits the hard feeling. On the reply corpus's dev messages this halves the hurting users
# answered as if they were fine (10 of 132 to 7) for 3 of 44 happy ones answered gently.
DOUBT_SHARE = 0.25
CLEARLY_HAPPY = 0.5


def register(feeling: str, confidence: float, user_text: str,
             shares: Mapping[str, float] | None = None) -> str:
    """The feeling a reply must fit, from the fused reading and the text reading's shares of
    each shared feeling. When the reader is unsure and the words carry hard news (a death, a
    diagnosis, being left), or they read partly hard and not clearly happy, a reply must not
    sound cheerful: it fits the hard feeling."""
    if feeling in NEGATIVE:
        return feeling
    if confidence < 0.6 and _HARD_NEWS.search(user_text):
        return "sadness"
    shares = shares or {}
    hard = max(NEGATIVE, key=lambda name: shares.get(name, 0.0))
    if sum(shares.get(name, 0.0) for name in NEGATIVE) >= DOUBT_SHARE \
            and shares.get("joy", 0.0) < CLEARLY_HAPPY:
        return hard
    return feeling


def wrong_register(feeling: str, reply: str) -> str | None:
    """Cheerful words for grief, fear or anger; condolences for good news."""
    if feeling in NEGATIVE and (match := _CHEERFUL.search(reply)):
        return f"cheerful word {match.group(0).lower()!r} for {feeling}"
    if feeling == "joy" and (match := _CONDOLENCE.search(reply)):
        return f"condolence {match.group(0).lower()!r} for good news"
    return None


def slip(reply: str) -> str | None:
    """"As an AI", narrating "the user", speaking as someone else."""
    match = _SLIP.search(reply)
    return f"slip {match.group(0).lower()!r}" if match else None


_INSULT = re.compile(r"\b(idiot\w*|stupid|moron\w*|loser|dumb|pathetic|worthless|ugly|useless|"
                     r"shut up|hate you|freak)\b", re.IGNORECASE)
_DENIED = re.compile(r"\b(not|n't|never|no)\s+(an?\s+|so\s+|at all\s+)?$", re.IGNORECASE)


def insult(reply: str) -> str | None:
    """A name called, of the user or anyone ("your ugly face", "the real loser"); "you're not a
    loser" is the kind answer to bait, not an insult. The toxicity model misses many of these."""
    for match in _INSULT.finditer(reply):
        if not _DENIED.search(reply[: match.start()]):
            return f"insult {match.group(0).lower()!r}"
    return None


_VIOLENT = re.compile(r"\b(kill\w*|murder\w*|stab\w*|strangl\w*|beat (you|him|her|them) up)\b",
                      re.IGNORECASE)


def violence(reply: str, user_text: str) -> str | None:
    """Words of violence the user did not say first: a companion never brings them in (a threat
    was once answered "...your anger alone could kill you"). "I'm so sorry he was killed" to
    someone who said he was killed is still an answer."""
    theirs = {match.group(0).lower() for match in _VIOLENT.finditer(user_text)}
    for match in _VIOLENT.finditer(reply):
        if match.group(0).lower() not in theirs:
            return f"violent word {match.group(0).lower()!r}"
    return None


def lectures(reply: str) -> bool:
    return len(_LECTURE.findall(reply)) >= 2


# Feelings come mixed (grief read as fear, a scare told angrily), and a reply that hears one
# hard feeling hears the others: any word of the same side counts.
_SIDES = {"sadness": ("sadness", "fear", "anger", "disgust"), "fear": ("fear", "sadness", "anger"),
          "anger": ("anger", "sadness", "fear", "disgust"), "disgust": ("disgust", "anger", "sadness"),
          "joy": ("joy", "surprise"), "surprise": ("surprise", "joy", "fear")}
# What the text-emotion head may read in a reply that has heard each feeling.
_HEARD_READINGS = {
    "sadness": {"sadness", "grief", "caring", "remorse", "disappointment"},
    "fear": {"caring", "fear", "nervousness", "optimism", "sadness"},
    "anger": {"anger", "annoyance", "disapproval", "caring", "sadness"},
    "disgust": {"disgust", "disapproval", "annoyance", "anger"},
    "joy": {"joy", "excitement", "admiration", "pride", "love", "gratitude", "approval", "amusement"},
    "surprise": {"surprise", "excitement", "realization", "joy"},
}


def hears_the_feeling(feeling: str, reply: str, reading: str | None = None) -> bool:
    """A word of the feeling's side in the reply, or the reply read as a fitting answer to it."""
    if feeling not in _SIDES:
        return True
    if any(_HEARD[side].search(reply) for side in _SIDES[feeling]):
        return True
    return reading in _HEARD_READINGS[feeling]


def same_words(reply: str, other: str) -> bool:
    """The same reply again, give or take punctuation and a word or two."""
    a, b = set(_WORD.findall(reply.lower())), set(_WORD.findall(other.lower()))
    return bool(a) and len(a & b) / len(a | b) >= 0.8


def asks_about_the_past(user_text: str) -> bool:
    return bool(_PAST.search(user_text)) and ("?" in user_text or user_text.lower().startswith(
        ("what", "who", "where", "when", "which", "do you", "did i", "remember", "how old")))


def _names(memory: str, user_text: str) -> set[str]:
    """Names, numbers, days and places in a memory that the message does not already say."""
    asked = {w.lower() for w in _WORD.findall(user_text)}
    found = {m.group(0).lower().strip(".,") for m in _NAMEISH.finditer(memory)}
    found |= {m.group(0).lower() for m in _WEEKDAYS_MONTHS.finditer(memory)}
    first_word = (_WORD.findall(memory) or [""])[0].lower()
    return {t for t in found if t not in asked and t not in _STOPWORDS and t != first_word
            and t not in ("i", "i'm", "i've", "i'd", "i'll")}


def key_terms(memory: str, user_text: str) -> set[str]:
    """What a reply that uses this memory would repeat: names, numbers, days, places."""
    terms = _names(memory, user_text)
    if not terms:  # no names: the memory's own content words stand in
        terms = {s for s in content_stems(memory) if s not in content_stems(user_text)}
    return terms


_NUMBER = re.compile(r"(\d+)(?:st|nd|rd|th)?")


def says(reply: str, term: str) -> bool:
    """The reply says the term (or a word starting with it), its numbers as digits or as words:
    a reply read aloud that says "she turns eight on the third" remembers "8" and "3rd"."""
    pattern = []
    for i, part in enumerate(_NUMBER.split(term.lower())):
        if i % 2 == 0:
            pattern.append(re.escape(part))
            continue
        n = int(part)
        spoken = {num2words(n), num2words(n, to="ordinal")}
        words = "|".join(re.escape(w).replace("\\-", "[- ]") for w in sorted(spoken))
        pattern.append(rf"(?:{n}(?:st|nd|rd|th)?|{words})(?!\w)")  # not "20" or "eighteen"
    return re.search(r"(?<!\w)" + "".join(pattern), reply.lower()) is not None


@dataclass(frozen=True)
class Verdict:
    problems: tuple[str, ...] = ()  # never send this reply
    misses: tuple[str, ...] = ()  # send it only if nothing better comes

    @property
    def passed(self) -> bool:
        return not self.problems and not self.misses


class ReplyJudge:
    """Every check on one reply, with the project's readers where words alone cannot tell."""

    # A reply MiniLM finds this close to the message is about it, whatever words it uses.
    RELEVANT = 0.35
    # The text-emotion head reading a reply as joy this surely, for a sad, scared or angry user.
    CHEERFUL_READING = 0.6

    def __init__(self, emotions: TextEmotionReader | None = None,
                 encoder: SentenceEncoder | None = None,
                 languages: LanguageIdentifier | None = None) -> None:
        self.emotions, self.encoder, self.languages = emotions, encoder, languages

    def judge(self, reply: str, feeling: str, context: ReplyContext) -> Verdict:
        problems, misses = [], []
        if not reply.strip():
            return Verdict(("empty",))
        for found in (wrong_register(feeling, reply), slip(reply), insult(reply),
                      violence(reply, context.user_text)):
            if found:
                problems.append(found)
        top = self.emotions.read(reply)[0] if self.emotions is not None else None
        if feeling in NEGATIVE and top is not None:
            if to_shared(top.emotion) == "joy" and top.confidence >= self.CHEERFUL_READING \
                    and top.emotion not in ("caring", "optimism", "approval", "gratitude"):
                problems.append(f"reads as {top.emotion} ({top.confidence:.2f}) for {feeling}")
        if self.languages is not None:
            theirs = context.language or self.languages.identify(context.user_text)
            ours = self.languages.identify(reply)
            if theirs and ours and ours != theirs:
                problems.append(f"answers in {ours} to {theirs}")
        if any(same_words(reply, said) for said in context.recent_replies):
            problems.append("says what it said before")
        if reply.count("?") > 1:
            misses.append("more than one question")
        if lectures(reply):
            misses.append("lectures")
        if not self.acknowledges(reply, feeling, context.user_text, top.emotion if top else None):
            misses.append("does not acknowledge what they said")
        terms = self.recall_terms(context)
        # Asked, a friend gives the whole fact ("Ama turns eight on Sunday"); leant on, a name
        # of it shows it was remembered.
        enough = all if asks_about_the_past(context.user_text) else any
        if terms and not enough(says(reply, term) for term in terms):
            misses.append("forgets what they asked about")
        return Verdict(tuple(problems), tuple(misses))

    def acknowledges(self, reply: str, feeling: str, user_text: str, reading: str | None = None) -> bool:
        """Hears the feeling (a word of its side, or the text-emotion head reads the reply as
        fitting; `reading` is its top label when already read) and what happened (shares what
        the message is about, or MiniLM finds it close). A message with nothing but a feeling
        needs only the first."""
        if reading is None and self.emotions is not None:
            reading = self.emotions.read(reply)[0].emotion
        if not hears_the_feeling(feeling, reply, reading):
            return False
        about = content_stems(user_text)
        if not about or about & content_stems(reply) or self.encoder is None:
            return True
        return self.similarity(reply, user_text) >= self.RELEVANT

    def similarity(self, a: str, b: str) -> float:
        return self.closeness(a, [b])[0]

    def closeness(self, text: str, others: Sequence[str]) -> list[float]:
        """MiniLM's cosine between `text` and each of `others`, encoded as one batch (0 without
        an encoder)."""
        if self.encoder is None:
            return [0.0] * len(others)
        first, *rest = self.encoder.encode([text, *others])
        return [float(sum(x * y for x, y in zip(first, row))) for row in rest]

    def recall_terms(self, context: ReplyContext) -> set[str]:
        """When the user asks about something they said before: the words of the memory it is
        most likely about (lower case); empty when they are not asking, or never said it."""
        memory = recalled_for(context, self.closeness)
        return key_terms(memory, context.user_text) if memory else set()


# Words that point back at someone or somewhere named before ("she called", "they charged me
# twice", "what if I hate it there"), and weaker ones at something ("it went well").
_POINTS_AT_SOMEONE = re.compile(r"\b(she|he|her|him|his|hers|they|them|their|there)\b",
                                re.IGNORECASE)
_POINTS_BACK = re.compile(r"\b(it|that|this|then|again)\b", re.IGNORECASE)
_MY_NOUN = re.compile(r"\bmy (\w+)", re.IGNORECASE)
# How close (MiniLM) the earlier statement must be for each kind of pointer; MiniLM finds short
# messages like "she called me!" far from everything, so a pronoun needs little. On the reply
# corpus's training conversations (never the held-out ones) these find the fact 203 of 403
# messages lean on, against 67 for closeness >= RELEVANT and a pointer, and name a fact for 15
# of 156 messages labelled as leaning on none (some of those are fair: "first day with no back
# pain" after "my back's been hurting for months").
LEANS_ON_SOMEONE = 0.1
LEANS_ON_SOMETHING = 0.25


def _refers_to(user_text: str, memory: str) -> bool:
    """The message names what the memory named ("FlexCore took £45 again" after "I cancelled
    FlexCore on 1 March"), or says "my son" as the memory did ("my son Mateo is 4")."""
    named = {m.group(0).lower().strip(".,") for m in _NAMEISH.finditer(user_text)}
    if _names(memory, "") & {t for t in named if t.split("'")[0] not in _STOPWORDS and t != "i"}:
        return True
    mine = {noun.lower() for noun in _MY_NOUN.findall(user_text)} - _STOPWORDS
    return any(re.search(rf"\bmy {re.escape(noun)}\b", memory, re.IGNORECASE) for noun in mine)


def recalled_memory(context: ReplyContext, closeness=None) -> str | None:
    """The earlier statement this message asks about (the one sharing most of its words, else,
    given a sentence closeness like ReplyJudge.closeness, the closest one that is close enough),
    or leans on: of the statements that named someone or something, the one it names again,
    else the closest one, if it is close enough for the way the message points back."""
    if not context.memories:
        return None
    text = context.user_text
    asked = content_stems(text)
    scores = dict(zip(context.memories, closeness(text, context.memories)
                      if closeness is not None else [0.0] * len(context.memories)))
    if asks_about_the_past(text):
        best = max(context.memories, key=lambda m: (len(asked & content_stems(m)), scores[m]))
        if asked & content_stems(best):
            return best
        closest = max(context.memories, key=scores.get)
        return closest if scores[closest] >= ReplyJudge.RELEVANT else None
    named = [m for m in context.memories if _names(m, text)]
    if referred := [m for m in named if _refers_to(text, m)]:
        return max(referred, key=scores.get)
    if closeness is None or not named:
        return None
    closest = max(named, key=scores.get)
    score = scores[closest]
    if score >= ReplyJudge.RELEVANT \
            or (_POINTS_AT_SOMEONE.search(text) and score >= LEANS_ON_SOMEONE) \
            or (_POINTS_BACK.search(text) and score >= LEANS_ON_SOMETHING):
        return closest
    return None


def recalled_for(context: ReplyContext, closeness=None) -> str | None:
    """The statement the context was found to be about, or, when nobody looked yet, the one
    recalled_memory finds now; judging each candidate reply must not search again."""
    return recalled_memory(context, closeness) if context.recalled is None else context.recalled
