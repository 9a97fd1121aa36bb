"""Replies from a local causal LM through onnxruntime-genai: the CPU runtime.

On two CPU cores transformers' generate() gives SmolLM2-135M about 10 tokens a second; the same
model built by onnxruntime-genai's own builder (int4 weights, int8 compute, only the last
position's logits during the prompt) gives about 100, and reads a prompt at ~3 ms a token.
The build runs once per model and adapter (~20 s) into the model cache, keyed by their digest.

A second reply to the same prompt (the pipeline asks again when a reply fails its checks)
rewinds the generator to the end of the prompt instead of reading the prompt again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from core.turn import ReplyRequest

log = logging.getLogger(__name__)

# Only the last position's logits while reading a prompt: a third less time per prompt token.
BUILD_OPTIONS = ("prune_lm_head=true",)


def model_digest(model_dir: Path, adapter_dir: Path | None) -> str:
    """What a built model depends on: the config and weight files of both directories (big
    weight files by size and time, so a worker's start does not hash half a gigabyte)."""
    digest = hashlib.sha256()
    for folder in (model_dir, adapter_dir):
        for path in sorted(folder.iterdir()) if folder is not None else ():
            if path.suffix not in (".safetensors", ".json", ".bin", ".model"):
                continue
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest() if stat.st_size < 2**26
                          else str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def build(model_dir: Path, adapter_dir: Path | None, target: Path, precision: str = "int4") -> Path:
    """An onnxruntime-genai model from a transformers directory, the adapter merged in first.

    It runs in a child process: merging and exporting hold the whole float32 model and torch's
    export state, which a worker should not keep for the rest of its life.
    """
    if (target / "genai_config.json").is_file():
        return target
    log.info("building the %s reply model for onnxruntime (first run only, ~30 s)", precision)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = [sys.executable, "-m", "models.reply.onnx_llm", str(model_dir), str(partial), precision]
    if adapter_dir is not None:
        command.append(str(adapter_dir))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    partial.rename(target)
    return target


def _build_here(model_dir: Path, out: Path, precision: str, adapter_dir: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="heartline-onnx-") as scratch:
        source = model_dir
        if adapter_dir is not None:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            source = Path(scratch) / "merged"
            model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
            PeftModel.from_pretrained(model, adapter_dir).merge_and_unload().save_pretrained(source)
            AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(source)
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(source),
                        "-o", str(out), "-p", precision, "-e", "cpu", "-c", str(Path(scratch) / "cache"),
                        "--extra_options", *BUILD_OPTIONS], check=True)


class OnnxReplyGenerator:
    def __init__(self, onnx_dir: Path, label: str, max_new_tokens: int = 60,
                 temperature: float = 0.7, top_p: float = 0.9, seed: int | None = None) -> None:
        import onnxruntime_genai as og

        og.disable_telemetry_events()
        self.og = og
        self.model = og.Model(str(onnx_dir))
        self.tokenizer = og.Tokenizer(self.model)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.name = label
        self._lock = threading.Lock()
        self._last: tuple[list[int], object] | None = None  # the last prompt and its generator

    def generate(self, request: ReplyRequest) -> str:
        chat = json.dumps([{"role": m.role, "content": m.content} for m in request.messages])
        prompt = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True)
        tokens = list(self.tokenizer.encode(prompt))
        with self._lock:
            generator = self._generator_at(tokens)
            start = generator.token_count()
            while not generator.is_done() and generator.token_count() - start < self.max_new_tokens:
                generator.generate_next_token()
            reply = generator.get_sequence(0)[start:]
            self._last = (tokens, generator)
        return self.tokenizer.decode(reply).strip()

    def _generator_at(self, tokens: list[int]):
        """A generator that has read `tokens`: the last one, rewound, when the prompt repeats."""
        if self._last is not None and self._last[0] == tokens:
            generator = self._last[1]
            # The prompt's last logits are gone after decoding: read its last token again.
            generator.rewind_to(len(tokens) - 1)
            generator.append_tokens(tokens[-1:])
            return generator
        self._last = None  # free the old one's cache before the new one allocates its own
        params = self.og.GeneratorParams(self.model)
        # A small model loops on what it has just read ("Lisbon ... Lisbon"); a mild penalty
        # on repeated tokens, as the transformers path has, keeps it moving.
        options = {"max_length": len(tokens) + self.max_new_tokens, "repetition_penalty": 1.1}
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        if self.seed is not None:
            options["random_seed"] = self.seed
        params.set_search_options(**options)
        generator = self.og.Generator(self.model, params)
        generator.append_tokens(tokens)
        return generator


if __name__ == "__main__":  # the child process of build()
    _build_here(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3],
                Path(sys.argv[4]) if len(sys.argv) > 4 else None)
