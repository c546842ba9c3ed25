"""Tiny random models for tests and the `tiny` preset: a 2-layer Qwen2 with a byte-level BPE tokenizer
trained offline on a few lines of code.

The tokenizer follows Qwen's conventions (ChatML specials, Qwen2 split regex, EOS distinct from the
pad token) so code written against it behaves the same on the real Qwen2.5-Coder models.

Not covered here: loading (models.py); the tiny model as a GGUF file (tests/gguf_writer.py, for the
tests of the GGUF path); nothing in this module is meant to generate sensible code.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

TINY_VERSION = "v2"
"""Bump when anything below changes, so cached tiny models are rebuilt."""
EOS, PAD, IM_START, IM_END = "<|endoftext|>", "<|fim_pad|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (EOS, IM_START, IM_END, PAD)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b

def is_even(n: int) -> bool:
    return n % 2 == 0

def max_of(numbers: list[int]) -> int:
    best = numbers[0]
    for x in numbers:
        if x > best:
            best = x
    return best

def reverse_words(text: str) -> str:
    return " ".join(reversed(text.split()))

class Stack:
    def __init__(self):
        self.items = []
    def push(self, item):
        self.items.append(item)

assert add(1, 2) == 3
print(is_even(4), max_of([3, 1, 2]))
int main() { return 0; }
function f(x) { return x * 2; }
Write a python function to find the first repeated character in a given string.
'''


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE (Qwen2 pre-tokenizer) trained on a fixed snippet; deterministic, offline."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator([_CORPUS] * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=[IM_START, IM_END], chat_template=CHAT_TEMPLATE)


def build_tiny_model(tokenizer, seed: int = 0):
    """A 2-layer Qwen2 causal LM with random weights (~70k parameters), initialised wide enough (std 0.1)
    that its next-token distributions are far from uniform and LoRA can move them."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        initializer_range=0.1,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)


def tiny_model_dir(cache_dir: Path) -> Path:
    """Build (once) and return the tiny model's directory under `cache_dir`."""
    out_dir = Path(cache_dir) / "models" / f"tiny-{TINY_VERSION}"
    if (out_dir / "config.json").is_file():
        return out_dir
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer).save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_dir.rename(out_dir)
    return out_dir
