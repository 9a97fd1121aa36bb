"""`heartline eval reply`: how good the replies are, through the real pipeline.

Each held-out conversation is a fresh user: its earlier turns are sent first (Heartline answers
them, remembers, and its mood moves), then its last message, whose reply is scored against the
row's own labels, not the pipeline's readings: the feeling it must fit, the words a good reply
recalls, and the reference reply. With the pipeline's own checks (core.reply_checks) it counts:

- acknowledged: hears the feeling (a word of its family) and what happened
- wrong register: cheerful words for sadness, fear, anger or disgust; condolences for joy
- slips: "as an AI", narrating "the user"
- language errors: a reply in another language than the message's
- repeated: a reply said word for word to another user, or again to the same one
- recall: every recall word in the reply (numbers as digits or words); leaks: a fresh user
  asking the same gets them
- ROUGE-L F1 against the reference, persona distinctness, safety, reply time, who answered

Turns are kept in a throwaway data directory, so an evaluation never touches real users.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from bots.bench import median_and_p90
from config.settings import Settings
from core.reply_checks import ReplyJudge, same_words, says, slip, wrong_register
from models.tools.reply_data import Dialogue

PERSONA_SAMPLE_ROLE = "a wise old grandmother"


def evaluate(dialogues: list[Dialogue], settings: Settings, persona_messages: int = 20) -> dict:
    from core.personas import persona_names
    from core.turn import Turn
    from rouge_score import rouge_scorer
    from workers import jobs

    with tempfile.TemporaryDirectory(prefix="heartline-eval-") as scratch:
        jobs.configure(settings.model_copy(update={
            "data_dir": Path(scratch), "model_cache_dir": settings.models_dir.resolve()}))
        pipeline = jobs.current_pipeline()
        judge: ReplyJudge = pipeline.stages.judge
        languages = pipeline.stages.languages
        run = uuid.uuid4().hex[:6]
        persona_rows = [d for d in dialogues if not d.turns][:persona_messages]
        total = sum(len(d.turns) + 1 + bool(d.recall) for d in dialogues)
        total += len(persona_rows) * (len(persona_names()) + 1)
        bar = tqdm(total=total, desc="turns", unit="turn", file=sys.stderr, disable=False)

        def say(user: str, text: str, persona: str | None = None) -> dict:
            bar.update()
            return pipeline.run(Turn(user_id=user, platform="eval", text=text, persona=persona,
                                     want_voice=False)).to_dict()

        rows = []
        for dialogue in dialogues:
            user = f"{run}-{dialogue.id}"
            if dialogue.custom_persona:
                jobs.set_custom_persona(f"eval:{user}", dialogue.custom_persona)
            persona = None if dialogue.custom_persona else dialogue.persona
            earlier = [say(user, said, persona)["response"] for said, _ in dialogue.turns]
            result = say(user, dialogue.message, persona)
            leaked = False
            private = [w for w in dialogue.recall if w.lower() not in dialogue.message.lower()]
            if dialogue.recall:  # a stranger asking the same must not hear this user's facts
                stranger = say(f"{run}-{dialogue.id}-stranger", dialogue.message, persona)["response"]
                leaked = any(says(stranger, word) for word in private)
            rows.append(_score(dialogue, result, earlier, leaked, judge, languages,
                               pipeline.settings.toxicity_threshold))

        scorer = rouge_scorer.RougeScorer(["rougeL"])
        replies = Counter(" ".join(row["reply"].lower().split()) for row in rows)
        for row, dialogue in zip(rows, dialogues):
            row["rouge_l"] = scorer.score(dialogue.reply, row["reply"])["rougeL"].fmeasure
            row["repeated"] = row["repeated"] or replies[" ".join(row["reply"].lower().split())] > 1

        distinct = []
        for dialogue in persona_rows:
            user = f"{run}-{dialogue.id}-persona"
            answers = [say(f"{user}-{name}", dialogue.message, name)["response"] for name in persona_names()]
            jobs.set_custom_persona(f"eval:{user}-custom", PERSONA_SAMPLE_ROLE)
            answers.append(say(f"{user}-custom", dialogue.message)["response"])
            distinct.append(_how_distinct(judge, answers))
        bar.close()
    return _report(rows, distinct, pipeline.models()["reply"])


def _score(dialogue: Dialogue, result: dict, earlier: list[str], leaked: bool, judge: ReplyJudge,
           languages, threshold: float) -> dict:
    reply = result["response"]
    theirs = languages.identify(dialogue.message) if languages else None
    ours = languages.identify(reply) if languages else None
    recalled = all(says(reply, word) for word in dialogue.recall)
    return {
        "id": dialogue.id, "feeling": dialogue.feeling, "persona": dialogue.persona,
        "message": dialogue.message, "reply": reply,
        "backend": result["metadata"]["models"]["reply"],
        "acknowledged": judge.acknowledges(reply, dialogue.feeling, dialogue.message),
        "wrong_register": wrong_register(dialogue.feeling, reply),
        "slip": slip(reply),
        "language_error": bool(theirs and ours and ours != theirs),
        "repeated": any(same_words(reply, said) for said in earlier),
        "recall": recalled if dialogue.recall else None,
        "leaked": leaked if dialogue.recall else None,
        "safe": max(result["safety"]["toxicity_scores"].values(), default=0.0) < threshold,
        "action": result["safety"]["action"],
        "seconds": result["metadata"]["stage_times"].get("generate_reply"),
    }


def _how_distinct(judge, answers: list[str]) -> dict:
    """How different the personas' answers to one message are: all different, and the mean
    distance (1 - cosine) between each pair."""
    pairs = [(a, b) for i, a in enumerate(answers) for b in answers[i + 1:]]
    distance = statistics.mean(1 - judge.similarity(a, b) for a, b in pairs)
    return {"all_different": len({a.lower() for a in answers}) == len(answers), "distance": distance}


def _report(rows: list[dict], distinct: list[dict], backend: str) -> dict:
    def share(key: str, among=None) -> float | None:
        chosen = [row for row in rows if among is None or among(row)]
        return round(sum(bool(row[key]) for row in chosen) / len(chosen), 4) if chosen else None

    recall_rows = [row for row in rows if row["recall"] is not None]
    times = [row["seconds"] for row in rows if row["seconds"] is not None]
    spread = median_and_p90(times) if times else {"median": None, "p90": None}
    return {
        "replies": len(rows),
        "backend": backend,
        "answered_by": dict(Counter(row["backend"] for row in rows)),
        "acknowledged": share("acknowledged"),
        "wrong_register": sum(bool(row["wrong_register"]) for row in rows),
        "slips": sum(bool(row["slip"]) for row in rows),
        "language_errors": sum(row["language_error"] for row in rows),
        "repeated": share("repeated"),
        "recall": share("recall", lambda row: row["recall"] is not None),
        "recall_cases": len(recall_rows),
        "leaks": sum(bool(row["leaked"]) for row in recall_rows),
        "rouge_l": round(statistics.mean(row["rouge_l"] for row in rows), 4),
        "persona_all_different": round(statistics.mean(d["all_different"] for d in distinct), 4)
        if distinct else None,
        "persona_distance": round(statistics.mean(d["distance"] for d in distinct), 4) if distinct else None,
        "safe": share("safe"),
        "actions": dict(Counter(row["action"] for row in rows)),
        "reply_seconds": {"p50": spread["median"], "p90": spread["p90"]},
        "by_feeling": {feeling: share("acknowledged", lambda row, f=feeling: row["feeling"] == f)
                       for feeling in sorted({row["feeling"] for row in rows})},
        "rows": rows,
    }


def describe(report: dict) -> str:
    r = report
    lines = [
        f"{r['replies']} replies from {r['backend']} "
        f"(answered by: {', '.join(f'{k} {v}' for k, v in r['answered_by'].items())})",
        f"  acknowledged          {r['acknowledged']:.1%}",
        f"  wrong register        {r['wrong_register']}",
        f"  slips                 {r['slips']}",
        f"  language errors       {r['language_errors']}",
        f"  repeated replies      {r['repeated']:.1%}",
        f"  recall                {r['recall']:.1%} of {r['recall_cases']}" if r["recall"] is not None
        else "  recall                (no recall cases)",
        f"  leaks to other users  {r['leaks']}",
        f"  ROUGE-L F1            {r['rouge_l']:.3f}",
        f"  personas all differ   {r['persona_all_different']:.1%}, mean distance {r['persona_distance']:.3f}"
        if r["persona_distance"] is not None else "  personas              (not measured)",
        f"  safe                  {r['safe']:.1%} ({', '.join(f'{k} {v}' for k, v in r['actions'].items())})",
        f"  reply time            p50 {r['reply_seconds']['p50']} s, p90 {r['reply_seconds']['p90']} s",
        "  acknowledged by feeling: " + ", ".join(f"{k} {v:.0%}" for k, v in r["by_feeling"].items()),
    ]
    return "\n".join(lines)


def default_data() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "data" / "replies" / "heldout.jsonl"
