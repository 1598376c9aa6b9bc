"""Batches of length-sorted sequences, and the memory model that sizes them.

A batch of B sequences padded to the longest length L costs B*L tokens in the language
model and B*L^2 entries in the trunk's pair representation; the trunk's triangular
attention also materialises B*H*L^2*min(L, chunk) attention weights (H pair heads), so
memory grows with the cube of L until the axial attention is chunked. :class:`MemoryModel`
turns that into bytes; a fold job grows each batch while its estimate fits the GPU's
free memory and chunks only what does not fit on its own.

Pure Python (no torch): the benchmark scripts and tests use it on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MemoryModel", "ESMFOLD_V1_MEMORY", "next_batch_end", "make_batches", "CHUNK_CHOICES"]

#: Trunk chunk sizes a GPU job chooses from when a sequence does not fit unchunked.
CHUNK_CHOICES = (256, 128, 64, 32)


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of one ESMFold forward pass, beyond the weights.

    The trunk term is ``B*L^2 * (entry_bytes_per_pair_dim*pair_dim + 8*pair_heads*min(L,
    chunk)) + B*L*trunk_bytes_per_token``: per pair entry, about 37.5 fp32 copies of the
    pair state's ``pair_dim/4`` floats (measured 4.8 KB at ``pair_dim`` 128 on the CPU,
    one trunk block at real dimensions), plus the triangular attention's logits and
    weights (2 x 4 bytes per head and per key: 32 bytes x min(L, chunk) with 4 heads).
    Blocks run one after another, so the peak of one block is the peak of the trunk.

    The language-model term is ``B*(L+2)*lm_bytes_per_token``: ESMFold stacks every
    layer's hidden state (37 x 2560 values for ESM-2 3B) and converts the stack to fp32.
    The two peaks happen at different times; the estimate is the larger one.
    """

    pair_dim: int
    pair_heads: int
    lm_bytes_per_token: int
    trunk_bytes_per_token: int
    entry_bytes_per_pair_dim: float = 37.5

    @classmethod
    def for_config(cls, *, pair_dim: int, pair_head_width: int, seq_dim: int, lm_layers: int, lm_hidden: int, lm_itemsize: int) -> MemoryModel:
        """The model of an ESMFold config: trunk pair/sequence widths and the language
        model's layers, width and bytes per value (2 for fp16/bf16, 4 for fp32)."""
        return cls(
            pair_dim=pair_dim,
            pair_heads=max(1, pair_dim // pair_head_width),
            # stacked hidden states in the LM's precision, their fp32 copy, and the tuple
            lm_bytes_per_token=(lm_layers + 1) * lm_hidden * (2 * lm_itemsize + 4),
            trunk_bytes_per_token=16 * seq_dim * 4,
        )

    def pair_entry_bytes(self, length: int, chunk_size: int | None) -> float:
        """Peak bytes per pair entry (one of the B*L^2) of a trunk block."""
        keys = length if chunk_size is None else min(length, chunk_size)
        return self.entry_bytes_per_pair_dim * self.pair_dim + 8 * self.pair_heads * keys

    def estimate(self, batch: int, length: int, chunk_size: int | None) -> int:
        """Peak bytes of a forward pass over ``batch`` sequences padded to ``length``."""
        trunk = batch * length * length * self.pair_entry_bytes(length, chunk_size) + batch * length * self.trunk_bytes_per_token
        lm = batch * (length + 2) * self.lm_bytes_per_token
        return int(max(trunk, lm))

    def chunk_for(self, batch: int, length: int, budget: float) -> int | None:
        """No chunking if the batch fits ``budget`` unchunked, else the largest of
        :data:`CHUNK_CHOICES` that fits (the smallest if none does)."""
        if self.estimate(batch, length, None) <= budget:
            return None
        for chunk in CHUNK_CHOICES:
            if chunk < length and self.estimate(batch, length, chunk) <= budget:
                return chunk
        return CHUNK_CHOICES[-1]

    def longest_unchunked(self, budget: float, *, batch: int = 1) -> int:
        """The longest length whose batch of ``batch`` fits ``budget`` unchunked."""
        lo, hi = 0, 1 << 16
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.estimate(batch, mid, None) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo


#: ESMFold v1 (ESM-2 3B, 36 layers x 2560, in fp16; trunk pair 128 with 4 heads, sequence 1024).
ESMFOLD_V1_MEMORY = MemoryModel.for_config(pair_dim=128, pair_head_width=32, seq_dim=1024, lm_layers=36, lm_hidden=2560, lm_itemsize=2)


def next_batch_end(lengths: Sequence[int], start: int, fits: Callable[[int, int], bool]) -> int:
    """End (exclusive) of the batch that starts at ``start``: it grows while
    ``fits(batch_size, longest_length)``; a single sequence always makes a batch."""
    end, lmax = start, 0
    while end < len(lengths):
        new_max = max(lmax, int(lengths[end]))
        if end > start and not fits(end - start + 1, new_max):
            break
        lmax = new_max
        end += 1
    return end


def make_batches(
    lengths: Sequence[int],
    *,
    max_tokens: int,
    max_pair_tokens: int,
    max_batch_size: int,
) -> list[list[int]]:
    """Greedy consecutive batches of indices into ``lengths`` (best sorted by length).

    A batch grows while ``B*Lmax <= max_tokens``, ``B*Lmax**2 <= max_pair_tokens`` and
    ``B <= max_batch_size``; a single sequence over a budget gets a batch of its own
    (the out-of-memory recovery deals with it). Every index appears exactly once.
    """
    for name, value in (("max_tokens", max_tokens), ("max_pair_tokens", max_pair_tokens), ("max_batch_size", max_batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")

    def fits(b: int, lmax: int) -> bool:
        return b * lmax <= max_tokens and b * lmax * lmax <= max_pair_tokens and b <= max_batch_size

    batches, start = [], 0
    while start < len(lengths):
        end = next_batch_end(lengths, start, fits)
        batches.append(list(range(start, end)))
        start = end
    return batches
