"""Shared-prefix packed forwards over a decoder's layers, and the on-disk cache of the hidden states
its frozen lower layers give each token sequence.

Packing: sequences that start with the same tokens (one prompt's completions, a pair's chosen and
rejected) go through the decoder as one row: their shared prefix once, then each sequence's own
tokens, with position ids restarting after the prefix for each sequence and an attention mask that
lets a token see the prefix and the earlier tokens of its own sequence only. Attention is causal, so
every token gets the hidden state it has in its sequence alone, and the prefix is computed once, not
once per sequence. Rows are right-padded into a batch; pad tokens see only pads and the prefix.

The cache: a reward model whose adapter covers only the top decoder layers (reward.trainable_layers)
runs its lower `split` layers as the base backbone, so their output for a text never changes.
`HiddenStateCache` computes it once per token sequence and keeps it at
`<cache_dir>/hidden/<backbone key>/<sequence key>.safetensors`: the backbone key hashes the backbone's
identity (model spec, resolved weights files by name, size and mtime, config.json, dtype, 4-bit) and
the split layer (`identity.json` beside the files says which backbone it is), the sequence key hashes
the token ids; a changed backbone or text is a different key. States are stored as float16 (bfloat16
for a sequence with a value beyond float16's range), about 1.8 KB per token for the 0.5B model, and
are rounded to that dtype even when computed afresh, so a score does not depend on whether the cache
was warm (beyond float noise: a sequence computed beside other sequences is packed differently).
A file is written to a temporary name and renamed (a killed run leaves whole files or none) and
carries the sha256 of its ids and of its data: a truncated, corrupt or mismatched file is counted in
`rejected`, recomputed and rewritten. Nothing prunes the directory; delete it to reclaim the space.

Not covered here: the adapter and score head on top (reward.py), loading models (models.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from lab.models import resolve_dtype, resolve_model_dir, uses_4bit

FLOAT16_LIMIT = 65000.0
"""Largest magnitude stored as float16; a sequence with a larger value is stored as bfloat16."""


def shared_prefix_length(sequences: list[list[int]]) -> int:
    """Tokens all `sequences` start with, leaving each at least one token of its own."""
    limit = min(len(s) for s in sequences) - 1
    length = 0
    while length < limit and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


@dataclass
class Packed:
    """A batch of packed rows: decoder inputs plus where each sequence's tokens lie in its row."""
    hidden: torch.Tensor
    """(rows, T, hidden size) input states."""
    positions: torch.Tensor
    """(rows, T) position ids: a sequence's own tokens continue from the end of the shared prefix."""
    mask: torch.Tensor
    """(rows, 1, T, T) additive attention mask (0 = may attend)."""
    tokens: list[list[torch.Tensor]]
    """Per row, per sequence: the row indices of the sequence's tokens, in order (prefix included)."""


def pack(states: list[list[torch.Tensor]], shared: list[int]) -> Packed:
    """Pack rows of sequences given as per-token states ([length, hidden] each); the sequences of row
    i share their first `shared[i]` tokens."""
    hidden_size, dtype, device = states[0][0].shape[-1], states[0][0].dtype, states[0][0].device
    layouts = []
    for sequences, prefix in zip(states, shared):
        parts, positions, tokens = [sequences[0][:prefix]], [torch.arange(prefix)], []
        segments = [torch.zeros(prefix, dtype=torch.long)]
        offset = prefix
        for number, sequence in enumerate(sequences, start=1):
            own = len(sequence) - prefix
            parts.append(sequence[prefix:])
            positions.append(torch.arange(prefix, len(sequence)))
            segments.append(torch.full((own,), number))
            tokens.append(torch.cat([torch.arange(prefix), torch.arange(offset, offset + own)]).to(device))
            offset += own
        layouts.append((torch.cat(parts), torch.cat(positions), torch.cat(segments), tokens))
    width = max(len(layout[1]) for layout in layouts)
    hidden = torch.zeros(len(layouts), width, hidden_size, dtype=dtype, device=device)
    position_ids = torch.zeros(len(layouts), width, dtype=torch.long)
    segment_ids = torch.full((len(layouts), width), -1)
    for row, (row_hidden, row_positions, row_segments, _) in enumerate(layouts):
        hidden[row, :len(row_positions)] = row_hidden
        position_ids[row, :len(row_positions)] = row_positions
        segment_ids[row, :len(row_segments)] = row_segments
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = causal & ((key == query) | (key == 0))
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return Packed(hidden, position_ids.to(device), mask[:, None].to(device), [layout[3] for layout in layouts])


def run_layers(backbone, layers, packed: Packed) -> torch.Tensor:
    """The packed states through `layers` of `backbone` (a Qwen2/Llama-style decoder model:
    rotary_emb, full attention), with the packed positions and mask."""
    layer_types = set(getattr(backbone.config, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        raise ValueError(f"packed forwards need full attention in every layer; this backbone has {sorted(layer_types)}")
    hidden = packed.hidden
    position_embeddings = backbone.rotary_emb(hidden, packed.positions)
    for layer in layers:
        hidden = layer(hidden, attention_mask=packed.mask, position_ids=packed.positions,
                       position_embeddings=position_embeddings)
    return hidden


def backbone_identity(model_config) -> dict:
    """What the lower layers' output depends on, besides the text: the reward backbone's spec and
    resolved weights (files by name, size and mtime; config.json's content), dtype and 4-bit."""
    spec = model_config.reward_backbone or model_config.generator
    model_dir = resolve_model_dir(spec, model_config)
    weights = sorted((path.name, path.stat().st_size, path.stat().st_mtime_ns)
                     for path in model_dir.iterdir() if path.suffix in (".safetensors", ".bin"))
    return {"spec": spec, "model_dir": str(model_dir.resolve()), "weights": weights,
            "config_sha256": hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest(),
            "dtype": str(resolve_dtype(model_config)), "load_in_4bit": uses_4bit(model_config)}


class HiddenStateCache:
    """Per token sequence, its hidden states after a backbone's first `split` decoder layers, kept
    under `directory` (None: computed every time, never stored). `hits`, `misses` and `rejected`
    (files found unreadable or inconsistent, then recomputed) count lookups."""

    def __init__(self, directory: str | Path | None, identity: dict | None = None):
        if directory is not None and identity is None:
            raise ValueError("a HiddenStateCache with a directory needs the backbone identity (backbone_identity)")
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.identity = identity
        self.hits = self.misses = self.rejected = 0

    @classmethod
    def for_reward_backbone(cls, model_config) -> HiddenStateCache:
        """The cache of the reward backbone `model_config` names, under `<model.cache_dir>/hidden`."""
        return cls(Path(model_config.cache_dir).expanduser() / "hidden", backbone_identity(model_config))

    def states(self, backbone, split: int, rows: list[list[list[int]]]) -> list[list[torch.Tensor]]:
        """Per row, per sequence of token ids: its states after `split` layers ([length, hidden size],
        in the backbone's dtype and on its device). Missing sequences of a row are computed together,
        packed on their shared prefix. split 0 is the token embeddings (never stored)."""
        embed = backbone.embed_tokens
        device, dtype = embed.weight.device, embed.weight.dtype
        if split == 0:
            return [[embed(torch.tensor(ids, device=device)) for ids in row] for row in rows]
        found = [[self._load(split, ids) for ids in row] for row in rows]
        missing = [[ids for ids, states in zip(row, row_found) if states is None]
                   for row, row_found in zip(rows, found)]
        computed = iter(self._compute(backbone, split, [row for row in missing if row]))
        for row, row_found in zip(missing, found):
            if row:
                fresh = iter(next(computed))
                for j, states in enumerate(row_found):
                    if states is None:
                        row_found[j] = next(fresh)
        return [[cast(torch.Tensor, states).to(device=device, dtype=dtype) for states in row] for row in found]

    @torch.no_grad()
    def _compute(self, backbone, split: int, rows: list[list[list[int]]]) -> list[list[torch.Tensor]]:
        if not rows:
            return []
        self.misses += sum(len(row) for row in rows)
        device = backbone.embed_tokens.weight.device
        embedded = [[backbone.embed_tokens(torch.tensor(ids, device=device)) for ids in row] for row in rows]
        packed = pack(embedded, [shared_prefix_length(row) for row in rows])
        output = run_layers(backbone, backbone.layers[:split], packed)
        result = []
        for row_number, (row, tokens) in enumerate(zip(rows, packed.tokens)):
            row_states = []
            for ids, index in zip(row, tokens):
                states = output[row_number, index]
                stored = states.to(torch.float16 if states.abs().max() <= FLOAT16_LIMIT else torch.bfloat16).cpu()
                self._store(split, ids, stored)
                row_states.append(stored)
            result.append(row_states)
        return result

    def _folder(self, split: int) -> Path:
        if self.directory is None or self.identity is None:
            raise ValueError("a HiddenStateCache without a directory and a backbone identity stores nothing")
        identity = {**self.identity, "split": split}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
        folder = self.directory / key
        if not (folder / "identity.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(folder / "identity.json", lambda path: path.write_text(json.dumps(identity, indent=2)))
        return folder

    def _load(self, split: int, ids: list[int]) -> torch.Tensor | None:
        if self.directory is None:
            return None
        path = self._folder(split) / f"{_ids_digest(ids)}.safetensors"
        if not path.is_file():
            return None
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata, states = f.metadata() or {}, f.get_tensor("states")
            valid = (metadata.get("ids_sha256") == _ids_digest(ids) and states.dim() == 2
                     and states.shape[0] == len(ids) and metadata.get("data_sha256") == _data_digest(states))
        except Exception:  # safetensors raises several types for truncated or garbled files
            valid = False
        if not valid:
            self.rejected += 1
            return None
        self.hits += 1
        return states

    def _store(self, split: int, ids: list[int], states: torch.Tensor) -> None:
        if self.directory is None:
            return
        from safetensors.torch import save_file
        metadata = {"ids_sha256": _ids_digest(ids), "data_sha256": _data_digest(states)}
        _write_atomically(self._folder(split) / f"{metadata['ids_sha256']}.safetensors",
                          lambda path: save_file({"states": states.contiguous()}, str(path), metadata=metadata))


def _ids_digest(ids: list[int]) -> str:
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


def _data_digest(states: torch.Tensor) -> str:
    return hashlib.sha256(states.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def _write_atomically(path: Path, write) -> None:
    """write(temporary path), then rename it to `path`: readers see the old file or the whole new one."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
