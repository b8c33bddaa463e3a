"""Row lookups whose gradients repeat bit for bit on a CPU (a GPU's backward adds atomically)."""
from __future__ import annotations

import torch


def take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` along the first dimension: shape ``(*index.shape, *table.shape[1:])``.

    Written with index_select because indexing's backward adds repeated rows (a sentence's many
    candidate pairs, a tag transition seen thousands of times) with atomic adds across threads, in
    whatever order they land: two runs of one seed then part within their first epoch on two threads.
    index_select's backward adds in a fixed order on a CPU; on a GPU it too adds atomically, and runs
    of one seed there part (README, Results).
    """
    return table.index_select(0, index.flatten()).view(*index.shape, *table.shape[1:])
