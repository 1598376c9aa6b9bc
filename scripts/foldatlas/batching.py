"""Batches of length-sorted sequences under a token budget that counts padding.

A batch of B sequences padded to the longest length Lmax costs B*Lmax tokens in the
language model and B*Lmax**2 entries in the trunk's pair representation, which is what
fills GPU memory for long proteins. Both budgets are checked, so long sequences are
folded in small batches and short ones in large batches.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["make_batches", "auto_pair_budget"]


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
    batches: list[list[int]] = []
    current: list[int] = []
    lmax = 0
    for i, length in enumerate(lengths):
        new_max = max(lmax, int(length))
        b = len(current) + 1
        if current and (b * new_max > max_tokens or b * new_max * new_max > max_pair_tokens or b > max_batch_size):
            batches.append(current)
            current, new_max = [], int(length)
        current.append(i)
        lmax = new_max
    if current:
        batches.append(current)
    return batches


def auto_pair_budget(total_memory_bytes: int, pairwise_dim: int, *, fraction: float = 0.5, copies: int = 24) -> int:
    """Pair-representation entries (B*L^2) that fit in ``fraction`` of a GPU's memory.

    The trunk keeps about ``copies`` fp32 tensors of shape (B, L, L, pairwise_dim) alive
    at its peak (triangular updates, attention, recycling); the rest of the memory holds
    the weights and the language model's activations. Out-of-memory recovery corrects
    an estimate that is too optimistic.
    """
    per_entry = pairwise_dim * 4 * copies
    return max(1, int(total_memory_bytes * fraction / per_entry))
