"""Storage on SQLite and on the real PostgreSQL server, schema made by the Alembic migrations."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from core.delivery import Delivery, Outgoing, VoiceNote
from core.mood import BotMood
from core.turn import Turn
from storage.db import make_engine, migrate, session_factory
from storage.outbox import Outbox
from storage.tables import Base, Message, ModerationEvent, User, VoiceClip
from storage.turns import SqlHistory, SqlTurnStore


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield engine
    if request.param == "postgres":
        _drop_schema(engine)
    engine.dispose()


def _drop_schema(engine) -> None:
    """The session's PostgreSQL database is shared by the tests: leave it as it was found."""
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def _migrate_when_all_are_ready(url: str, ready) -> str:
    engine = make_engine(url)
    ready.wait()
    try:
        migrate(engine)
        return "migrated"
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"[:200]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_together_on_a_new_database_all_migrate(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'h.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    # Spawned, as a bot and a worker are: forking this process, which holds model threads from
    # earlier tests, can deadlock the children.
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, spawn.Pool(3) as pool:
        ready = manager.Barrier(3)
        assert pool.starmap(_migrate_when_all_are_ready, [(url, ready)] * 3) == ["migrated"] * 3
    engine = make_engine(url)
    try:
        assert {"users", "messages", "alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        if backend == "postgres":
            _drop_schema(engine)
        engine.dispose()


def result(text="hi", response="hello", action="pass", flags=()):
    return {
        "user_input": {"text": text, "transcript": None, "has_audio": False, "has_image": False},
        "emotion_analysis": {"text_emotions": [{"emotion": "joy", "confidence": 0.9}],
                             "image_emotion": None, "voice_emotion": None,
                             "fused_emotion": {"primary_emotion": "joy", "confidence": 0.9,
                                               "source": "text_only"}},
        "response": response, "reply_audio": None,
        "safety": {"is_safe": True, "toxicity_scores": {}, "action": action,
                   "input_scores": {}, "input_flags": list(flags)},
        "metadata": {"processing_time": 1.0},
    }


def test_migrations_create_exactly_the_models_schema(engine):
    assert {"users", "messages", "voice_profiles", "moderation_events"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    migrate(engine)  # a second start changes nothing


def test_turns_are_kept_per_platform_identity_and_recalled_in_order(engine, tmp_path):
    sessions = session_factory(engine)
    store = SqlTurnStore(sessions)
    for i in range(3):
        store.save_turn(Turn(user_id="42", platform="telegram", chat_id="c"), result(f"t{i}", f"r{i}"))
    store.save_turn(Turn(user_id="42", platform="discord"), result("other platform", "x"))
    history = SqlHistory(sessions, turns=2).recall("telegram:42", "anything")
    assert [(m.role, m.text) for m in history] == [
        ("user", "t1"), ("assistant", "r1"), ("user", "t2"), ("assistant", "r2")]
    with sessions() as session:
        assert session.scalar(select(User.id).where(User.platform == "discord")) is not None
        assert len(session.scalars(select(User)).all()) == 2


def test_one_platform_message_is_stored_once(engine, tmp_path):
    sessions = session_factory(engine)
    store = SqlTurnStore(sessions)
    turn = Turn(user_id="7", platform="telegram", chat_id="c", message_id="1001")
    first = store.save_turn(turn, result())
    assert store.save_turn(turn, result("again")) == first
    with sessions() as session, pytest.raises(IntegrityError):  # and the schema itself insists
        user_id = session.scalar(select(Message.user_id))
        session.add(Message(user_id=user_id, platform="telegram", chat_id="c",
                            platform_message_id="1001", emotion_analysis={}, safety={}, details={}))
        session.commit()


def test_flagged_input_opens_a_moderation_event_and_deleting_a_user_removes_everything(engine, tmp_path):
    sessions = session_factory(engine)
    store = SqlTurnStore(sessions)
    message_id = store.save_turn(Turn(user_id="9"), result(action="flagged_input", flags=["threat"]))
    with sessions.begin() as session:
        event = session.scalar(select(ModerationEvent))
        assert (event.message_id, event.kind, event.reasons, event.status) == (
            message_id, "flagged_input", ["threat"], "open")
        session.delete(session.scalar(select(User)))
    with sessions() as session:
        assert session.scalars(select(Message)).all() == []
        assert session.scalars(select(ModerationEvent)).all() == []


def test_a_voice_profile_is_kept_replaced_and_deleted_with_its_clips(engine, tmp_path):
    from datetime import datetime, timezone

    from storage.voices import VoiceProfileStore

    voices = VoiceProfileStore(session_factory(engine))
    consent = datetime(2026, 11, 22, tzinfo=timezone.utc)
    assert voices.load("telegram:5") is None and not voices.status("telegram:5").registered
    voices.save("telegram:5", [b"RIFF1", b"RIFF2"], ["one", "two"], "world-vc", [0.1, 0.2],
                {"f0_mean": 5.1}, consent)
    first = voices.load("telegram:5")
    assert (first.transcripts, first.embedding, first.conversion) == (("one", "two"), (0.1, 0.2),
                                                                     {"f0_mean": 5.1})
    assert first.clips == (b"RIFF1", b"RIFF2")
    status = voices.status("telegram:5")
    assert (status.clips, status.model_name) == (2, "world-vc")
    assert status.consented_at.replace(tzinfo=timezone.utc) == consent

    voices.save("telegram:5", [b"RIFF3"], ["three"], "world-vc", None, None, consent)
    assert voices.load("telegram:5").clips == (b"RIFF3",)  # the first clips are gone
    assert voices.delete("telegram:5") and voices.load("telegram:5") is None
    with session_factory(engine)() as session:
        assert session.scalars(select(VoiceClip)).all() == []
    assert not voices.delete("telegram:5")


def test_preferences_training_clips_and_forget(engine, tmp_path):
    from storage.users import UserStore
    from storage.voices import VoiceProfileStore

    sessions = session_factory(engine)
    users, turns = UserStore(sessions), SqlTurnStore(sessions)
    key = "discord:77"
    assert users.prefs(key).voice_replies and users.prefs(key).persona is None
    users.update(key, persona="tutor", voice_replies=False)
    assert (users.prefs(key).persona, users.prefs(key).voice_replies) == ("tutor", False)

    users.start_training(key)
    assert users.prefs(key).training_since is not None
    assert users.add_pending_clip(key, b"RIFFa", "first") == 1
    assert users.add_pending_clip(key, b"RIFFb", "second") == 2
    assert users.pending_clips(key) == [(b"RIFFa", "first"), (b"RIFFb", "second")]
    users.stop_training(key)
    assert users.pending_clips(key) == [] and users.prefs(key).training_since is None

    from datetime import datetime, timezone

    VoiceProfileStore(sessions).save(key, [b"RIFFv"], ["mine"], "m", None, None,
                                            datetime.now(timezone.utc))
    turn = Turn(user_id="77", platform="discord")
    outbox = Outbox(sessions)
    outbox.put(Delivery("msg-1", "discord", "c", key, Outgoing("sorry", VoiceNote(b"OggS", 1.0, b""))))
    turns.save_turn(turn, result("sad", "sorry"), lambda mood, hours: BotMood(0.9, 0.3))
    assert users.recent_emotions(key, 5) == [("joy", 0.9)]
    state = turns.user_state(turn)
    assert (state.mood, state.recent_emotions) == (BotMood(0.9, 0.3), ["joy"])
    assert 0 <= state.hours_since_mood < 0.1
    users.forget(key)
    assert users.recent_emotions(key, 5) == [] and outbox.get("msg-1") is None
    assert users.bot_mood(key) is None and turns.user_state(turn).mood is None
    assert VoiceProfileStore(sessions).load(key) is not None  # the voice stays
    assert users.prefs(key).persona == "tutor"


def _answer(key: str, voice: bool = True) -> Delivery:
    note = VoiceNote(b"OggS" + key.encode(), 2.5, bytes(range(8))) if voice else None
    return Delivery(key, "telegram", "42", "telegram:7", Outgoing(f"answer {key}", note), reply_to="9")


def test_an_answer_is_written_once_and_sent_once(engine):
    sessions = session_factory(engine)
    worker, sender = Outbox(sessions), Outbox(sessions, owner="bot-1")
    assert worker.put(_answer("msg-a"))
    assert not worker.put(Delivery("msg-a", "telegram", "42", "telegram:7", Outgoing("a second answer")))
    [claimed] = sender.claim("telegram")
    assert claimed.reply.text == "answer msg-a" and claimed.reply_to == "9"
    assert claimed.reply.voice == VoiceNote(b"OggSmsg-a", 2.5, bytes(range(8)))
    assert sender.claim("telegram") == [] and Outbox(sessions).claim("telegram") == []  # leased
    assert sender.claim("discord") == []
    sender.sent("msg-a")
    assert sender.voice("msg-a") is None  # the voice note is not kept once delivered
    assert sender.pending() == 0


def test_two_senders_never_claim_the_same_answer(engine):
    from concurrent.futures import ThreadPoolExecutor

    sessions = session_factory(engine)
    for n in range(40):
        Outbox(sessions).put(_answer(f"msg-{n}", voice=False))
    senders = [Outbox(sessions, owner=f"bot-{n}") for n in range(2)]

    def drain(outbox: Outbox) -> list[str]:
        keys = []
        while batch := outbox.claim("telegram", limit=3):
            keys += [d.key for d in batch]
            for delivery in batch:
                outbox.sent(delivery.key)
        return keys

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(drain, senders)
    assert sorted(first + second) == sorted(f"msg-{n}" for n in range(40))
    assert not set(first) & set(second)


def test_a_failed_send_waits_its_turn_and_a_dead_senders_lease_runs_out(engine, monkeypatch):
    from datetime import datetime, timedelta, timezone

    import storage.outbox

    sessions = session_factory(engine)
    outbox = Outbox(sessions)
    outbox.put(_answer("msg-r"))
    [first] = outbox.claim("telegram")
    outbox.retry_later("msg-r", delay_s=30)
    assert outbox.claim("telegram") == []  # not before 30 s
    later = datetime.now(timezone.utc) + timedelta(seconds=31)
    monkeypatch.setattr(storage.outbox, "_now", lambda: later)
    [again] = outbox.claim("telegram")
    assert (first.attempts, again.attempts) == (0, 1)

    # Claimed and never marked sent (the bot was killed): free again once the lease runs out.
    monkeypatch.setattr(storage.outbox, "_now", lambda: later + timedelta(seconds=storage.outbox.LEASE_S + 1))
    assert [d.key for d in Outbox(sessions, owner="restarted").claim("telegram")] == ["msg-r"]


def test_finished_answers_are_purged_and_pending_ones_kept(engine, monkeypatch):
    from datetime import datetime, timedelta, timezone

    import storage.outbox

    outbox = Outbox(session_factory(engine))
    outbox.put(_answer("msg-old"))
    outbox.put(_answer("msg-waiting"))
    outbox.sent("msg-old")
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1, seconds=1)
    monkeypatch.setattr(storage.outbox, "_now", lambda: tomorrow)
    assert outbox.purge(86400) == 1
    assert outbox.get("msg-old") is None and outbox.get("msg-waiting") is not None


def test_a_new_users_first_messages_at_once_make_one_user(engine):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    sessions = session_factory(engine)
    store = SqlTurnStore(sessions)
    for round_ in range(5):
        start = Barrier(2)

        def first_message(n: int) -> int:
            turn = Turn(user_id=f"new-{round_}", platform="telegram", chat_id="c", message_id=f"{round_}-{n}")
            start.wait()
            return store.save_turn(turn, result("joy", "hello"))

        with ThreadPoolExecutor(2) as pool:
            saved = list(pool.map(first_message, (1, 2)))
        assert len(set(saved)) == 2  # both messages kept, under one user
        with sessions() as session:
            assert len(session.scalars(select(User).where(User.platform_user_id == f"new-{round_}")).all()) == 1


def test_an_upgrade_moves_registered_voice_clips_from_files_into_the_database(engine, tmp_path):
    from sqlalchemy import text

    from storage.voices import VoiceProfileStore

    Base.metadata.drop_all(engine)  # start again from the schema before clips moved
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate(engine, "0005")
    clips = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for clip, data in zip(clips, (b"RIFFa", b"RIFFb")):
        clip.write_bytes(data)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (id, platform, platform_user_id, voice_replies, "
                                "banned, created_at) VALUES (1, 'telegram', '9', true, false, :now)"),
                           {"now": "2026-11-30 10:00:00"})
        connection.execute(text(
            "INSERT INTO voice_profiles (user_id, model_name, clip_paths, transcripts, consented_at, "
            "created_at) VALUES (1, 'world-vc', :paths, :texts, :now, :now)"),
            {"paths": json.dumps([str(c) for c in clips]), "texts": json.dumps(["one", "two"]),
             "now": "2026-11-30 10:00:00"})
    migrate(engine)
    profile = VoiceProfileStore(session_factory(engine)).load("telegram:9")
    assert (profile.clips, profile.transcripts) == ((b"RIFFa", b"RIFFb"), ("one", "two"))
    assert not any(clip.exists() for clip in clips)  # /voice delete could never find them again


def test_two_turns_of_one_user_at_once_both_move_the_mood(engine):
    """Each worker read the mood before the other wrote it; both moves must land."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    store = SqlTurnStore(session_factory(engine))

    def warmer(mood, hours):
        time.sleep(0.05)  # a turn takes seconds between reading its state and saving
        return BotMood((mood.warmth if mood else 0.0) + 0.01, 0.5)

    def turn(n: int) -> int:
        return store.save_turn(Turn(user_id="moody", platform="telegram", chat_id="c", message_id=str(n)),
                               result("joy", "hello"), warmer)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(turn, range(12)))
    mood = store.user_state(Turn(user_id="moody", platform="telegram")).mood
    assert round(mood.warmth, 4) == 0.12


def test_warnings_add_up_to_a_mute_and_every_action_is_audited(engine):
    from datetime import timedelta

    from storage.moderation import Moderation
    from storage.users import UserStore

    moderation, key = Moderation(session_factory(engine)), "telegram:501"
    users = UserStore(session_factory(engine))

    def restriction():  # as the chat asks, with the user's row just read
        return moderation.restriction(key, users.prefs(key))

    assert restriction() is None
    day = timedelta(hours=24)
    assert moderation.warn("telegram:1", key, "rude", 3, day) == (1, None)
    assert moderation.warn("telegram:1", key, "rude again", 3, day)[1] is None
    count, until = moderation.warn("telegram:1", key, "threat", 3, day)
    assert count == 3 and until is not None
    muted = restriction()
    assert (muted.kind, muted.until, muted.tell) == ("muted", until, True)
    assert restriction().tell is False  # told once, then not answered at all
    moderation.unban("telegram:1", key, "apologised")
    assert restriction() is None
    moderation.ban("cli", key, "spam")
    banned = restriction()
    assert (banned.kind, banned.tell) == ("banned", True)  # a new restriction is told again
    assert moderation.user(key)["warnings"] == 3 and moderation.user(key)["banned"] is True
    assert [(r["actor"], r["action"], r["reason"]) for r in moderation.audit(target=key)] == [
        ("cli", "ban", "spam"), ("telegram:1", "unban", "apologised"),
        ("heartline", "mute", "3 warnings"), ("telegram:1", "warn", "threat"),
        ("telegram:1", "warn", "rude again"), ("telegram:1", "warn", "rude")]


def test_daily_quotas_hold_when_many_take_at_once_and_count_voice_after_the_fact(engine):
    from concurrent.futures import ThreadPoolExecutor

    from storage.quotas import DailyQuota, Quotas

    quotas = Quotas(session_factory(engine), DailyQuota(turns=5, voice_seconds=60, registrations=1))
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: quotas.take("discord:9", "turns"), range(12)))
    assert taken.count(True) == 5 and quotas.used("discord:9")["turns"] == 5
    quotas.give_back("discord:9", "turns")
    assert quotas.take("discord:9", "turns") and not quotas.take("discord:9", "turns")
    assert quotas.take("discord:10", "turns")  # someone else's quota is their own

    assert quotas.voice_left("discord:9")
    quotas.add("discord:9", "voice_seconds", 45.5)
    quotas.add("discord:9", "voice_seconds", 20.0)  # a reply is spoken whole, even past the quota
    assert quotas.used("discord:9")["voice_seconds"] == 65.5 and not quotas.voice_left("discord:9")
    assert quotas.tell_voice_ran_out("discord:9") and not quotas.tell_voice_ran_out("discord:9")

    assert quotas.take("discord:9", "registrations") and not quotas.take("discord:9", "registrations")
    unlimited = Quotas(session_factory(engine), DailyQuota())
    assert all(unlimited.take("discord:9", "turns") for _ in range(3))


def test_warnings_given_at_once_all_count(engine):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from storage.moderation import Moderation

    moderation = Moderation(session_factory(engine))
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda n: moderation.warn(f"telegram:{n}", "telegram:777", None, 100,
                                                         timedelta(hours=1))[0], range(8)))
    assert sorted(counts) == list(range(1, 9)) and moderation.user("telegram:777")["warnings"] == 8
