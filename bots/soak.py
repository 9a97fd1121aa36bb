"""`heartline soak`: many users at once, in production shape, with a worker and the bot killed
on the way; every message must be answered exactly once.

A fake Telegram Bot API on loopback, `heartline worker` processes and one `heartline run` bot on
the configured Redis (and database). Each user, in a private chat, sends a message (every third a
voice note), waits for the answer, thinks a moment and sends the next, as people do. A third of
the way in, a busy worker is SIGKILLed and a new one started; halfway, Telegram answers a few
calls with 5xx and 429 errors; two thirds in, the bot is SIGKILLed and started again. When the
time is up the users stop writing, the last answers are awaited, and each chat is counted: a
user who writes one message at a time gets their k-th answer to their k-th message, so more
answers than messages is a duplicate and fewer is a loss. No process may log the bot token or
what users wrote.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings

SENTENCES = (
    "We had to put our old dog to sleep today.",
    "I got the job I interviewed for last week!",
    "My landlord just raised the rent again and I'm furious.",
    "I have a doctor's appointment tomorrow and I'm scared of what they'll say.",
    "My sister is coming to visit next weekend.",
    "I finally finished the painting I started in spring.",
    "Nobody remembered my birthday this year.",
    "Can you help me plan a quiet Sunday?",
    "I passed my driving test this morning!",
    "I can't sleep, my head won't stop racing.",
    "My best friend is moving to another country.",
    "The train was cancelled and I missed my grandmother's party.",
)
VOICE_EVERY = 3  # every third message a user sends is a voice note
ANSWERS = ("sendVoice", "sendMessage")
FAILED = "error id"  # what a turn that failed every retry answers


@dataclass
class Chat:
    """One user's private chat: when each message went, and when each answer came."""

    user: int
    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # the fake's arrival time of each answer
    failed: int = 0  # answers that say a turn failed for good
    voice: int = 0  # answers that carried a voice note


class Soak:
    def __init__(self, settings: Settings, users: int, minutes: float, workers: int,
                 patience_s: float, scratch: Path) -> None:
        self.settings, self.minutes, self.workers_wanted = settings, minutes, workers
        self.patience_s, self.scratch = patience_s, scratch
        self.queue = f"soak-{uuid.uuid4().hex[:8]}"
        first = random.randrange(10**8, 9 * 10**8)  # fresh users, never anyone's real history
        self.chats = [Chat(first + n) for n in range(users)]
        self.events: list[dict] = []  # what was killed when; each is started again at once
        self.processes: list[subprocess.Popen] = []

    # ---- processes ----

    def _env(self, fake) -> dict:
        env = {key: value for key, value in os.environ.items()
               if key not in ("DISCORD_BOT_TOKEN", "TELEGRAM_BOT_TOKEN", "HEARTLINE_TELEGRAM_WEBHOOK_URL")}
        return {**env, "HEARTLINE_DATA_DIR": str(self.scratch),
                # the usual model cache, so the reply model's ONNX build is not made again
                "HEARTLINE_MODEL_CACHE_DIR": str(self.settings.models_dir.resolve()),
                "HEARTLINE_REDIS_URL": self.settings.redis_url, "HEARTLINE_QUEUE_NAME": self.queue,
                "HEARTLINE_WEB_PORT": "0", "HEARTLINE_REPLY_TEXT": "caption",
                "TELEGRAM_BOT_TOKEN": fake.token, "HEARTLINE_TELEGRAM_API_URL": fake.api_url}

    def _start(self, command: str, env: dict) -> subprocess.Popen:
        log = self.scratch / f"{command}-{len(self.processes) + 1}.log"
        with open(log, "w") as out:
            process = subprocess.Popen([sys.executable, "-m", "bots.cli", command], env=env,
                                       stdout=subprocess.DEVNULL, stderr=out)
        self.processes.append(process)
        return process

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()

    def _killed(self, started: float, what: str, **details) -> None:
        self.events.append({"at_s": round(time.monotonic() - started, 1), "killed": what, **details})

    # ---- users ----

    def _answers(self, fake, chat: Chat) -> list:
        return [call for call in fake.sent(ok=True) if call.method in ANSWERS
                and str(call.params.get("chat_id")) == str(chat.user)]

    def _talk(self, fake, chat: Chat, notes: dict[str, tuple[bytes, int]], until: float) -> None:
        """Write, wait for the answer, think, write again; give up only after `patience_s`."""
        rng = random.Random(chat.user)
        while time.monotonic() < until:
            sentence = rng.choice(SENTENCES)
            if notes and len(chat.sent) % VOICE_EVERY == VOICE_EVERY - 1:
                ogg, seconds = notes[sentence]
                chat.sent.append(time.monotonic())
                fake.send_voice(chat.user, ogg, duration=seconds)
            else:
                chat.sent.append(time.monotonic())
                fake.send_text(chat.user, sentence)
            deadline = chat.sent[-1] + self.patience_s
            while len(self._answers(fake, chat)) < len(chat.sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            if len(self._answers(fake, chat)) < len(chat.sent):
                return  # still unanswered: the count at the end says lost
            time.sleep(rng.uniform(0.5, 3.0))

    def _voice_notes(self) -> dict[str, tuple[bytes, int]]:
        """Each sentence spoken once by the packaged voice, as a phone would send it."""
        from config import wiring
        from core.turn import VoiceStyle
        from models.audio.codec import PyAvCodec

        voice = wiring.synthesizer(self.settings)
        if voice is None:
            return {}
        codec, notes = PyAvCodec(), {}
        for sentence in SENTENCES:
            audio = voice.synthesize(sentence, VoiceStyle())
            notes[sentence] = (codec.encode_voice_note(audio), max(1, round(audio.duration_s)))
        return notes

    # ---- faults ----

    def _kill_a_worker(self, redis, env: dict, started: float) -> None:
        """SIGKILL a worker in the middle of a job (any of ours, if none is busy soon) and start
        another."""
        from rq import Queue, Worker

        ours = {process.pid for process in self.processes if process.poll() is None}
        queue = Queue(self.queue, connection=redis)
        deadline = time.monotonic() + 15
        while True:
            workers = [w for w in Worker.all(queue=queue) if w.pid in ours]
            busy = [w for w in workers if w.get_state() == "busy"]
            if busy or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if busy or workers:
            victim = (busy or workers)[0]
            os.kill(victim.pid, signal.SIGKILL)
            self._killed(started, "worker", mid_job=bool(busy))
        self._start("worker", env)

    def _platform_faults(self, fake, started: float) -> None:
        """Telegram having a bad minute: errors on polling, downloads and sends, which the bot
        must retry (after `retry_after` for a 429) without losing or doubling an answer."""
        fake.fail_next("getUpdates", 502)
        fake.fail_next("getFile", 500)
        fake.fail_next("sendVoice", 500, times=2)
        fake.fail_next("sendVoice", 429, retry_after=2)
        fake.fail_next("sendMessage", 429, retry_after=1)
        self.events.append({"at_s": round(time.monotonic() - started, 1), "platform_faults": 6})

    def _kill_the_bot(self, bot: subprocess.Popen, env: dict, started: float) -> subprocess.Popen:
        bot.send_signal(signal.SIGKILL)
        bot.wait(30)
        self._killed(started, "bot")
        return self._start("run", env)

    # ---- the run ----

    def run(self, progress: bool = True) -> dict:
        from redis import Redis
        from rq import Queue, Worker
        from tqdm import tqdm

        from bots.fake_telegram import FakeTelegram

        redis = Redis.from_url(self.settings.redis_url)
        notes = self._voice_notes()
        with FakeTelegram() as fake:
            env = self._env(fake)
            try:
                for _ in range(self.workers_wanted):
                    self._start("worker", env)
                bot = self._start("run", env)
                # Workers say they are there once their models are loaded.
                _wait(lambda: Worker.count(connection=redis, queue=Queue(self.queue, connection=redis))
                      >= self.workers_wanted, 600, "the workers to load their models", self.processes)
                fake.wait_for("getUpdates", timeout=120)
                started = time.monotonic()
                until = started + self.minutes * 60
                users = [threading.Thread(target=self._talk, args=(fake, chat, notes, until), daemon=True)
                         for chat in self.chats]
                for user in users:
                    user.start()
                faults = [(started + self.minutes * 20, "worker"), (started + self.minutes * 30, "platform"),
                          (started + self.minutes * 40, "bot")]
                bar = tqdm(total=round(self.minutes * 60), desc="soak", file=sys.stderr,
                           bar_format="{desc}: {n}/{total} s |{bar}|{postfix}", disable=not progress)
                while any(user.is_alive() for user in users):
                    if faults and time.monotonic() >= faults[0][0]:
                        _, what = faults.pop(0)
                        if what == "worker":
                            self._kill_a_worker(redis, env, started)
                        elif what == "platform":
                            self._platform_faults(fake, started)
                        else:
                            bot = self._kill_the_bot(bot, env, started)
                    elapsed = min(bar.total, round(time.monotonic() - started))
                    bar.update(elapsed - bar.n)
                    bar.set_postfix(sent=sum(len(c.sent) for c in self.chats),
                                    answered=sum(len(self._answers(fake, c)) for c in self.chats),
                                    refresh=False)
                    time.sleep(1)
                bar.close()
                time.sleep(5)  # a duplicate would come now, after the answer the user waited for
                for chat in self.chats:
                    answers = self._answers(fake, chat)
                    chat.answered = [call.time for call in answers]
                    chat.failed = sum(FAILED in (call.params.get("text") or call.params.get("caption")
                                                 or "") for call in answers)
                    chat.voice = sum(call.method == "sendVoice" for call in answers)
                unknown = len(fake.unknown)
            finally:
                self._stop_all()
                Queue(self.queue, connection=redis).delete(delete_jobs=True)
            logs = {log.name: log.read_text() for log in self.scratch.glob("*.log")}
        token = [name for name, text in logs.items() if fake.token in text]
        words = [name for name, text in logs.items() if any(s in text for s in SENTENCES)]
        return self.report(unknown, token, words)

    def report(self, unknown_calls: int, token_in_logs: list[str], text_in_logs: list[str]) -> dict:
        latencies = sorted(answer - sent for chat in self.chats
                           for sent, answer in zip(chat.sent, chat.answered))
        sent = sum(len(chat.sent) for chat in self.chats)
        return {
            "users": len(self.chats), "minutes": self.minutes, "workers": self.workers_wanted,
            "sent": sent,
            "answered": sum(min(len(c.sent), len(c.answered)) for c in self.chats),
            "duplicated": sum(max(0, len(c.answered) - len(c.sent)) for c in self.chats),
            "lost": sum(max(0, len(c.sent) - len(c.answered)) for c in self.chats),
            "failed": sum(c.failed for c in self.chats),
            "voice_answers": sum(c.voice for c in self.chats),
            "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2) if latencies else None,
            "latency_max_s": round(latencies[-1], 2) if latencies else None,
            "unknown_api_calls": unknown_calls,
            # Process logs that show the bot token, or what users wrote: both must be none.
            "token_in_logs": token_in_logs,
            "text_in_logs": text_in_logs,
            "events": self.events,
        }


def _wait(condition, timeout: float, what: str, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"a Heartline process exited while waiting for {what}; see its log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(0.5)


def soak(settings: Settings, users: int, minutes: float, workers: int = 2, patience_s: float = 300,
         keep: Path | None = None, progress: bool = True) -> dict:
    """Run a soak in a throwaway data directory (or `keep`, which then holds the processes' logs)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return Soak(settings, users, minutes, workers, patience_s, keep).run(progress)
    with tempfile.TemporaryDirectory(prefix="heartline-soak-") as scratch:
        return Soak(settings, users, minutes, workers, patience_s, Path(scratch)).run(progress)


def describe(report: dict) -> str:
    lines = [f"{report['users']} users for {report['minutes']:g} min, {report['workers']} workers",
             *(f"  {event['at_s']:.0f} s: {_event_line(event)}" for event in report["events"]),
             f"sent {report['sent']}  answered {report['answered']}  duplicated {report['duplicated']}  "
             f"lost {report['lost']}  failed {report['failed']}  "
             f"(voice notes {report['voice_answers']})"]
    if report["token_in_logs"]:
        lines.append(f"THE BOT TOKEN IS IN THESE LOGS: {', '.join(report['token_in_logs'])}")
    if report["text_in_logs"]:
        lines.append(f"USERS' WORDS ARE IN THESE LOGS: {', '.join(report['text_in_logs'])}")
    if report["latency_p50_s"] is not None:
        lines.append(f"answer latency p50 {report['latency_p50_s']:.1f} s, p95 {report['latency_p95_s']:.1f} s, "
                     f"max {report['latency_max_s']:.1f} s")
    return "\n".join(lines)


def _event_line(event: dict) -> str:
    if "platform_faults" in event:
        return f"{event['platform_faults']} Telegram errors injected (502, 500, 429) on polling, download, sending"
    if event["killed"] == "bot":
        return "SIGKILLed the bot, started it again"
    return "SIGKILLed a worker" + (" mid-job" if event["mid_job"] else "") + ", started a new one"
