"""Tiny random models for tests: a 2-layer Qwen2 with a byte-level BPE tokenizer trained offline on a
few lines of code, and a writer for the same model as a GGUF file (to exercise the GGUF path fast).

The tokenizer follows Qwen's conventions (ChatML specials, Qwen2 split regex, EOS distinct from the
pad token) so code written against it behaves the same on the real Qwen2.5-Coder models.

Not covered here: loading (models.py); nothing in this module is meant to generate sensible code.
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
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, initializer_range=0.1,
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


def write_tiny_gguf(model_dir: Path, gguf_path: Path) -> Path:
    """Write the (float32) Qwen2 model in `model_dir`, tokenizer included, as a llama.cpp GGUF file."""
    import json

    import gguf
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = model.config
    writer = gguf.GGUFWriter(str(gguf_path), "qwen2")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    specials = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)

    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embedding
        if name == "model.embed_tokens.weight":
            gguf_name = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf_name = "output_norm.weight"
        else:
            _, _, layer, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            gguf_name = f"blk.{layer}.{names[module]}.{kind}"
        writer.add_tensor(gguf_name, tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf_path
