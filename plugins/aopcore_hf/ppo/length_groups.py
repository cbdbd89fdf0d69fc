"""Forward passes over rows grouped by query length.

A left-padded batch computes every row at the width of its longest query: one long prompt among short ones makes
every forward and backward of the step pay for padding (in the quickstart, a 100-token query beside seven of about
45 made a third of the work padding). Splitting the rows into groups of similar length, each padded only to its own
longest query, computes the same log-probs, values and entropies with fewer tokens; on a CPU the work is the tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

# what one more forward call costs beyond its tokens, in tokens (Python and kernel launches over every layer)
CALL_OVERHEAD_TOKENS = 32


def length_groups(lengths: Sequence[int], extra: int, overhead: int = CALL_OVERHEAD_TOKENS) -> list[list[int]]:
    """Row indices in groups, each computed at its longest length plus ``extra``, with the fewest padded tokens
    plus ``overhead`` per group: the optimum is a partition of the rows sorted by length into runs, found exactly."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n
    start = [0] * (n + 1)
    for j in range(1, n + 1):
        width = lengths[order[j - 1]] + extra  # the longest of rows i..j-1 in sorted order
        for i in range(j):
            cost = best[i] + (j - i) * width + overhead
            if cost < best[j]:
                best[j], start[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[start[j] : j])
        j = start[j]
    return groups[::-1]


def grouped_forward(
    forward: Callable[..., tuple[Any, ...]], model: Any, value_head: Any, batch: Any
) -> tuple[Any, ...]:
    """``forward(model, value_head, batch)`` over groups of ``batch``'s rows (``batch.rows(index, query_width)``),
    its per-row outputs put back in the batch's row order (gradients flow through the regrouping)."""
    response = batch.tokens.shape[1]
    query = batch.ids.shape[1] - response
    lengths = batch.attn[:, :query].sum(dim=1).tolist()
    groups = length_groups(lengths, response)
    if len(groups) == 1:
        return forward(model, value_head, batch)
    parts = [forward(model, value_head, batch.rows(torch.tensor(g), max(lengths[i] for i in g))) for g in groups]
    back = torch.argsort(torch.tensor([i for g in groups for i in g])).to(batch.ids.device)
    return tuple(None if outs[0] is None else torch.cat(outs)[back] for outs in zip(*parts))
