"""The local reply backend on tiny models built here: a LoRA adapter trained in the test must
change what the model says, and a seq2seq (T5) model must answer through the same class."""

from __future__ import annotations

import pytest
import torch

from core.turn import ChatMessage, FusedEmotion, ReplyRequest
from models.reply.local_llm import LocalReplyGenerator, flatten

# peft calls a transformers method that transformers 5 deprecates; nothing here to change.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

TARGET = "i hear you"
WORDS = "system user assistant : be kind today was hard i hear you so tired"
REQUEST = ReplyRequest(
    messages=[ChatMessage("system", "be kind"), ChatMessage("user", "today was hard")],
    persona="friend", emotion=FusedEmotion("sadness", 0.8, "text_only"), user_key="test:1",
)


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator([WORDS], trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<unk>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
        chat_template="{% for m in messages %}{{ m.role }} : {{ m.content }} <eos> {% endfor %}"
                      "{% if add_generation_prompt %}assistant :{% endif %}",
    )


def fit(model, batch: dict, steps: int, lr: float) -> None:
    """Overfit the model on one example until greedy decoding repeats it."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    # On tensors this small, thread hand-offs cost more than the arithmetic (10x on a busy box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A random tiny Llama and a LoRA adapter trained on it to answer REQUEST with TARGET."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("llama")
    tokenizer = tiny_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    ))
    model_dir, adapter_dir = root / "tiny-llama", root / "kind-adapter"
    tokenizer.save_pretrained(model_dir)
    model.save_pretrained(model_dir)

    chat = [{"role": m.role, "content": m.content} for m in REQUEST.messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
    reply = tokenizer(TARGET)["input_ids"] + [tokenizer.eos_token_id]
    # The loss is on the reply only, as in supervised fine-tuning of a chat model.
    batch = {"input_ids": torch.tensor([prompt + reply]),
             "labels": torch.tensor([[-100] * len(prompt) + reply])}
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    fit(lora, batch, steps=60, lr=1e-2)
    lora.save_pretrained(adapter_dir)
    return model_dir, adapter_dir


def test_a_trained_lora_adapter_is_applied_on_load(llama):
    model_dir, adapter_dir = llama
    base = LocalReplyGenerator(model_dir, "tiny-llama", max_new_tokens=8, temperature=0)
    adapted = LocalReplyGenerator(model_dir, "tiny-llama", max_new_tokens=8, temperature=0,
                                  adapter_dir=adapter_dir)
    assert base.generate(REQUEST) != TARGET
    assert adapted.generate(REQUEST) == TARGET
    assert adapted.name == "tiny-llama+lora:kind-adapter"


def test_a_seq2seq_model_answers_the_flattened_conversation(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    ))
    prompt = flatten(REQUEST.messages)
    assert prompt == "be kind\nUser: today was hard\nAssistant:"
    batch = {"input_ids": tokenizer(prompt, return_tensors="pt")["input_ids"],
             "labels": torch.tensor([tokenizer(TARGET)["input_ids"] + [tokenizer.eos_token_id]])}
    fit(model, batch, steps=60, lr=1e-2)
    tokenizer.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)

    generator = LocalReplyGenerator(tmp_path, "tiny-t5", max_new_tokens=8, temperature=0)
    assert generator.seq2seq
    assert generator.generate(REQUEST) == TARGET


def test_the_adapter_setting_reaches_the_local_generator(llama, monkeypatch):
    from config import wiring
    from config.settings import Settings

    model_dir, adapter_dir = llama
    monkeypatch.setenv("HEARTLINE_REPLY_BACKEND", "local")
    monkeypatch.setenv("HEARTLINE_REPLY_RUNTIME", "transformers")  # onnx: tests/test_reply_training.py
    monkeypatch.setenv("HEARTLINE_REPLY_TEMPERATURE", "0")
    monkeypatch.setenv("HEARTLINE_REPLY_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("HEARTLINE_REPLY_ADAPTER_DIR", str(adapter_dir))
    generator = wiring.replier(Settings())
    assert generator.name == "tiny-llama+lora:kind-adapter"
    assert generator.generate(REQUEST) == TARGET
