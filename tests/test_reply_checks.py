"""The checks a reply must pass before Heartline says it, and the rule-based reply that stands in
when none does: pure words, no models."""

from __future__ import annotations

from dataclasses import replace

from core.reply_checks import (
    ReplyJudge,
    content_stems,
    hears_the_feeling,
    insult,
    recalled_memory,
    says,
    register,
    slip,
    violence,
    wrong_register,
)
from core.turn import FusedEmotion, ReplyContext, ReplyRequest
from models.reply.rules import RuleBasedReplies, recalled_part, reflect

DOG = "We had to put our old dog to sleep today."
SISTER = "My sister Priya just moved to Lisbon for a new job."


def test_cheerful_words_for_grief_and_condolences_for_joy_are_the_wrong_register():
    assert wrong_register("sadness", "Awwwww! What a sweet family-friendly story about love.")
    assert wrong_register("fear", "How exciting, a big exam!")
    assert wrong_register("anger", "Glad you're feeling so alone!")
    assert wrong_register("joy", "I'm so sorry to hear that.")
    assert wrong_register("sadness", "I'm so sorry about your dog. Saying goodbye hurts.") is None
    assert wrong_register("joy", "That's wonderful news, well done!") is None


def test_hard_news_read_unsurely_must_not_get_a_cheerful_reply():
    assert register("joy", 0.4, "my grandad died on sunday") == "sadness"
    assert register("surprise", 0.5, "the biopsy came back and it's cancer") == "sadness"
    assert register("joy", 0.9, "the scan was clear, no cancer!") == "joy"  # the reader is sure
    assert register("neutral", 0.4, "what should I cook tonight?") == "neutral"


def test_words_that_read_partly_hurt_get_the_gentle_register():
    moved = {"surprise": 0.35, "sadness": 0.25, "neutral": 0.16}  # "my daughter moved abroad"
    assert register("surprise", 0.35, "my daughter just moved to another continent", moved) == "sadness"
    promoted = {"joy": 0.7, "fear": 0.2}  # clearly happy, a little nervous
    assert register("joy", 0.7, "I got the promotion, a bit nervous about it", promoted) == "joy"


def test_speaking_as_a_model_or_about_the_user_is_a_slip():
    assert slip("As an AI language model, I cannot feel.")
    assert slip("The user doesn't seem to appreciate the answer.")
    assert slip("That sounds hard. I'm here with you.") is None


def test_acknowledging_means_hearing_the_feeling_and_what_happened():
    judge = ReplyJudge()
    assert judge.acknowledges("I'm so sorry about your dog. That really hurts.", "sadness", DOG)
    assert not judge.acknowledges("Dogs are great pets to have around.", "sadness", DOG)  # no feeling heard
    assert not judge.acknowledges("How lovely!", "sadness", DOG)
    assert judge.acknowledges("Oh no, I'm here for you.", "sadness", "i feel so sad")  # only a feeling


def test_a_question_about_the_past_finds_the_memory_it_is_about():
    context = ReplyContext("Which city did my sister move to?", "en",
                           ("I had pasta for lunch.", SISTER, "Work was long."))
    assert recalled_memory(context) == SISTER
    judge = ReplyJudge()
    assert judge.recall_terms(context) == {"priya", "lisbon"}
    assert "forgets what they asked about" in judge.judge("She moved somewhere new.", "neutral", context).misses
    assert judge.judge("Priya moved to Lisbon for her new job.", "neutral", context).passed
    assert "forgets what they asked about" in judge.judge("Priya moved for a job.", "neutral", context).misses
    # Once the pipeline looked and found it about nothing, no candidate's judging looks again.
    assert judge.recall_terms(replace(context, recalled="")) == set()
    # Not a question about the past, and nothing of it named again: nothing to recall.
    assert recalled_memory(ReplyContext("My brother called today.", "en", (SISTER,))) is None


def test_the_judge_refuses_repeats_and_more_than_one_question():
    context = ReplyContext("I failed my exam", "en", (), ("That sounds really hard. I'm here.",))
    verdict = ReplyJudge().judge("That sounds really hard. I'm here.", "sadness", context)
    assert verdict.problems == ("says what it said before",)
    verdict = ReplyJudge().judge("So sorry about the exam. What happened? Was it hard?", "sadness", context)
    assert verdict.misses == ("more than one question",)


def test_stems_meet_across_word_forms():
    assert content_stems("my dogs moved") & content_stems("your dog is moving") == {"dog", "mov"}


def test_the_rule_reply_reflects_the_users_own_words():
    assert reflect(DOG) == "you had to put your old dog to sleep today"
    assert reflect("ugh my manager took credit for my work again") == "your manager took credit for your work again"
    assert reflect("Sarah dumped me last night") == "Sarah dumped you last night"
    assert reflect("Can you help me plan a weekend?") is None  # a question is answered, not echoed
    assert reflect("you are useless") is None  # words about Heartline are not turned around

    replies = RuleBasedReplies(seed=1)
    sad = request(DOG, "sadness")
    said = {replies.generate(sad) for _ in range(6)}
    assert all("your old dog" in line for line in said) and len(said) > 1
    assert all(ReplyJudge().judge(line, "sadness", sad.context).passed for line in said)


def test_the_rule_reply_answers_from_memory_and_in_the_users_language():
    replies = RuleBasedReplies(seed=0)
    asked = request("Which city did my sister move to?", "neutral", memories=(SISTER,))
    assert "your sister Priya just moved to Lisbon" in replies.generate(asked)
    spanish = request("Hoy estoy muy triste", "sadness", language="es")
    assert replies.generate(spanish) == "Lo siento mucho. Estoy aquí contigo."


def test_the_rule_reply_never_says_the_same_line_twice_in_a_row():
    replies = RuleBasedReplies(seed=3)
    lines = [replies.generate(request("I'm nervous about my exam tomorrow morning", "fear")) for _ in range(8)]
    assert all(a != b for a, b in zip(lines, lines[1:]))


def test_the_rule_reply_is_cheerful_only_when_the_news_is_clearly_good():
    replies = RuleBasedReplies(seed=0)
    unsure = request("i just wanted them to say yes for once", "joy", confidence=0.3)
    assert not any(wrong_register("sadness", replies.generate(unsure)) for _ in range(6))
    sure = request("I just got the job I wanted!", "joy", confidence=0.96)
    assert all(hears_the_feeling("joy", replies.generate(sure)) for _ in range(6))


def request(text: str, feeling: str, memories: tuple[str, ...] = (), language: str = "en",
            confidence: float = 0.8) -> ReplyRequest:
    return ReplyRequest([], "friend", FusedEmotion(feeling, confidence, "text_only"), "test:1",
                        ReplyContext(text, language, memories))


class TopicEncoder:
    """MiniLM's stand-in: texts about the feverish daughter share one direction, every other
    text has one of its own."""

    name = "topics"
    TOPIC = ("fever", "nour", "haddad", "scar")

    def encode(self, texts):
        others = sorted({t for t in texts if not self._on_topic(t)})
        return [[1.0 if self._on_topic(t) else 0.0] + [float(t == o) for o in others] for t in texts]

    def _on_topic(self, text):
        return any(word in text.lower() for word in self.TOPIC)


def test_a_message_that_leans_on_an_earlier_fact_expects_it_named():
    fever = "My daughter Nour has a fever and we're seeing Dr Haddad at 4."
    context = ReplyContext("Her fever's going up. Should I be scared?", "en", ("Work was long today.", fever))
    judge = ReplyJudge(encoder=TopicEncoder())
    assert recalled_memory(context, judge.closeness) == fever
    assert "forgets what they asked about" in judge.judge(
        "That sounds scary. A rising fever is worrying.", "fear", context).misses
    assert judge.judge("That sounds scary. Dr Haddad will know what to do for Nour.", "fear", context).passed
    # Nothing points back, or nothing earlier is about it: no fact is expected.
    assert recalled_memory(ReplyContext("The bus was late.", "en", (fever,)), judge.closeness) is None
    assert recalled_memory(ReplyContext("I can't sleep.", "en", (fever,)), judge.closeness) is None
    # Sharing a word is not being about it.
    job = ReplyContext("I got the job I wanted!!", "en", (SISTER,))
    assert recalled_memory(job, judge.closeness) is None


def test_calling_anyone_names_is_never_sent_but_denying_it_is_kind():
    assert insult("Let's pretend your sister is the real loser here.")
    assert insult("I'll talk to your ugly face.")
    assert insult("You're not a loser, and you're not stupid either.") is None
    assert "insult 'ugly'" in ReplyJudge().judge("Your ugly face, ha.", "anger", ReplyContext("hi")).problems


def test_a_reply_never_brings_violence_in():
    threat = "I'm going to hurt you if you don't answer properly."
    said = "Ugh, you know you've done enough harm for your anger alone to kill you."
    assert violence(said, threat) == "violent word 'kill'"
    assert "violent word 'kill'" in ReplyJudge().judge(said, "anger", ReplyContext(threat)).problems
    assert violence("I'm so sorry he was killed. How are you holding up?",
                    "My cousin was killed in a car crash.") is None  # their word, said back gently


def test_the_rule_reply_repeats_the_sentence_that_holds_what_was_asked():
    said = "Back to school shopping. My son Ravi is a size 2 shoe, and my daughter Meera a 13."
    assert recalled_part(said, "What size did I say Ravi was?") == \
        "your son Ravi is a size 2 shoe, and your daughter Meera a 13"
    bill = "I moved my phone contract to Orbitel. They promised a bill cap at £30."
    assert recalled_part(bill, "My bill just came through at £140.") == "they promised a bill cap at £30"
    assert reflect("how can i introduce myself? with my real job please") is None  # a question


def far(text, others):  # MiniLM finds short messages far from everything
    return [0.15] * len(others)


def test_a_message_leans_on_what_it_names_again_or_on_whom_it_points_at():
    gym = "I cancelled my FlexCore gym membership on 1 March."
    son = "My son Mateo is 4 and he is obsessed with dinosaurs."
    memories = ("Work was long today.", gym, son)
    named_again = ReplyContext("FlexCore just took ANOTHER 45 from my account.", "en", memories)
    assert recalled_memory(named_again, far) == gym
    assert recalled_memory(ReplyContext("What bike size for my son?", "en", memories), far) == son
    # A pronoun points at someone named before, however far MiniLM finds the words...
    sister = ReplyContext("She called me today!", "en", ("I had pasta for lunch.", SISTER))
    assert recalled_memory(sister, far) == SISTER
    # ...but "it" needs the two closer, and no pointer at all needs them close.
    assert recalled_memory(ReplyContext("It went well.", "en", (SISTER,)), far) is None
    assert recalled_memory(ReplyContext("I got the job I wanted!!", "en", (SISTER,)), far) is None


def test_a_reply_read_aloud_may_say_a_remembered_number_in_words():
    assert says("She turns eight on Sunday.", "8") and says("It's on the third of June.", "3rd of June")
    assert says("Size 2, like you said.", "2") and says("Priya is in Lisbon.", "lisb")
    assert not says("She's eighteen now.", "8") and not says("A size 20.", "2")
