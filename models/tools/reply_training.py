"""`heartline train reply`: a LoRA adapter that teaches a local causal LM Heartline's replies.

The prompts are the pipeline's own (`models.tools.reply_data.prompt_for`), so the model learns from
exactly what it will be asked at run time; the loss is on the reply only. Built on transformers'
Trainer and peft: checkpoints every `save_steps` (a killed run resumes from its last one), a
progress bar, validation loss each epoch, and ROUGE-L of greedy replies against the references
(Google's `rouge-score`) on a fixed sample of the validation rows.

The output directory holds the adapter (`adapter_model.safetensors`, fp16) and `metrics.json`;
it loads through `HEARTLINE_REPLY_ADAPTER_DIR`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from models.tools.reply_data import Dialogue, Readers, prompt_for

log = logging.getLogger(__name__)

METRICS = "metrics.json"


@dataclass
class TrainOptions:
    epochs: float = 2.0
    learning_rate: float = 3e-4
    batch_size: int = 8
    lora_r: int = 8  # 4.9 MB of fp16 factors on SmolLM2-135M's seven projections
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                       "up_proj", "down_proj")
    # Conversations with a fact to recall also appear as a later session would see them: no
    # recent turns, what the user said recalled as memories.
    memory_variants: bool = True
    rouge_samples: int = 40
    save_steps: int = 50
    max_steps: int = -1  # > 0 stops early (tests)
    max_tokens: int = 768  # longer examples are left out, with a count in the log
    seed: int = 0


def split(dialogues: list[Dialogue], share: float = 0.1) -> tuple[list[Dialogue], list[Dialogue]]:
    """A stable validation split when none is given: by a hash of each row's id."""
    def held(d: Dialogue) -> bool:
        return int(hashlib.sha256(d.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share
    train = [d for d in dialogues if not held(d)]
    dev = [d for d in dialogues if held(d)]
    if not dev or not train:
        return dialogues, dialogues[: max(1, len(dialogues) // 10)]
    return train, dev


def examples(dialogues: list[Dialogue], readers: Readers, tokenizer, options: TrainOptions,
             variants: bool) -> list[dict]:
    rows, too_long = [], 0
    for dialogue in dialogues:
        windows = [None]
        if variants and dialogue.recall and len(dialogue.turns) >= 2:
            windows.append(0)
        for window in windows:
            request = prompt_for(dialogue, readers) if window is None else prompt_for(
                dialogue, readers, history_turns=window)
            example = encode(tokenizer, request.messages, dialogue.reply)
            if len(example["input_ids"]) > options.max_tokens:
                too_long += 1
                continue
            rows.append(example)
    if too_long:
        log.warning("left out %d examples longer than %d tokens", too_long, options.max_tokens)
    return rows


def encode(tokenizer, messages, reply: str) -> dict:
    """Prompt and reply as one sequence; only the reply (and its end) is learned."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    answer = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


def train(train_rows: list[Dialogue], dev_rows: list[Dialogue], readers: Readers, base_dir: Path,
          out_dir: Path, options: TrainOptions) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    random.seed(options.seed)
    torch.manual_seed(options.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("building prompts for %d training and %d validation conversations",
             len(train_rows), len(dev_rows))
    train_set = examples(train_rows, readers, tokenizer, options, options.memory_variants)
    dev_set = examples(dev_rows, readers, tokenizer, options, False)
    if not train_set:
        raise ValueError("no training example fits in the token limit")

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    model = get_peft_model(model, LoraConfig(
        r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
        target_modules=list(options.target_modules), task_type="CAUSAL_LM"))
    checkpoints = out_dir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,  # a share of all steps
        logging_steps=10,
        eval_strategy="epoch",
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=2,
        train_sampling_strategy="group_by_length",  # less padding: a step costs what its rows cost
        bf16=cuda,  # mixed precision on a GPU; CPUs train in float32
        use_cpu=not cuda,
        report_to=[],
        seed=options.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    history = Metrics(out_dir / METRICS)
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
        callbacks=[rouge_each_epoch(tokenizer, _rouge_sample(dev_rows, readers, options), history)],
    )
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    if not history.epochs:  # stopped by max_steps before an epoch ended: measure it anyway
        trainer.evaluate()
    model.save_pretrained(out_dir)
    _half_precision(out_dir / "adapter_model.safetensors")
    summary = {"base": base_dir.name, "train_rows": len(train_rows), "dev_rows": len(dev_rows),
               "train_examples": len(train_set), "resumed_from": Path(last).name if last else None,
               "options": asdict(options), "epochs": history.epochs}
    history.write(summary)
    return summary


def _trainer_class():
    import torch.nn.functional as F
    from transformers import Trainer

    class ReplyOnlyTrainer(Trainer):
        """The vocabulary projection only where there is a reply token to learn: most of each
        example is prompt, and projecting it onto 49k words cost a fifth of every step."""

        loss_is_scaled_for_ga = True  # divided below by the reply tokens of the whole step

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            base = model.get_base_model()
            hidden = base.model(**inputs).last_hidden_state[:, :-1]
            targets = labels[:, 1:]
            learned = targets != -100
            logits = base.lm_head(hidden[learned])
            loss = F.cross_entropy(logits.float(), targets[learned], reduction="sum")
            loss = loss / (num_items_in_batch or learned.sum())
            return (loss, {"logits": logits}) if return_outputs else loss

    return ReplyOnlyTrainer


def _rouge_sample(dev_rows: list[Dialogue], readers: Readers, options: TrainOptions) -> list[tuple]:
    chosen = sorted(dev_rows, key=lambda d: d.id)[: options.rouge_samples]
    return [(prompt_for(d, readers).messages, d.reply) for d in chosen]


def _half_precision(path: Path) -> None:
    """LoRA factors in fp16: half the file (a few MB), and no difference once merged."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {name: t.to(torch.float16) if t.is_floating_point() else t for name, t in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})


class Metrics:
    """Per-epoch figures, written as they come so an interrupted run keeps what it measured."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.epochs: list[dict] = json.loads(path.read_text())["epochs"] if path.is_file() else []
        self.pending: dict = {}

    def close_epoch(self, state, rouge_l: float) -> None:
        losses = [entry for entry in state.log_history if "loss" in entry]
        evals = [entry for entry in state.log_history if "eval_loss" in entry]
        row = {"epoch": round(state.epoch or 0, 2), "step": state.global_step,
               "train_loss": round(losses[-1]["loss"], 4) if losses else None,
               "val_loss": round(evals[-1]["eval_loss"], 4) if evals else None,
               "rouge_l": round(rouge_l, 4)}
        self.epochs = [e for e in self.epochs if e["step"] < row["step"]] + [row]
        log.info("epoch %.2f: train loss %s, validation loss %s, ROUGE-L %.3f",
                 row["epoch"], row["train_loss"], row["val_loss"], rouge_l)
        self.write({})

    def write(self, summary: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({**summary, "epochs": self.epochs}, indent=2))


def rouge_each_epoch(tokenizer, sample: list[tuple], metrics: Metrics):
    """A callback: ROUGE-L F1 of greedy replies to a fixed validation sample after each epoch's
    evaluation, recorded with the losses."""
    from transformers import TrainerCallback

    class RougeEachEpoch(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            metrics.close_epoch(state, rouge_l(model, tokenizer, sample))

    return RougeEachEpoch()


def rouge_l(model, tokenizer, sample: list[tuple]) -> float:
    import torch
    from rouge_score import rouge_scorer

    if not sample:
        return 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    was_training = model.training
    model.eval()
    scores = []
    with torch.inference_mode():
        for messages, reference in sample:
            chat = [{"role": m.role, "content": m.content} for m in messages]
            inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True,
                                                   return_tensors="pt", return_dict=True)
            inputs = inputs.to(model.device)
            output = model.generate(**inputs, max_new_tokens=60, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
            reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            scores.append(scorer.score(reference, reply)["rougeL"].fmeasure)
    model.train(was_training)
    return sum(scores) / len(scores)
