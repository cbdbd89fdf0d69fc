"""Supervised pretraining of the sequence tier's start policy: loss on the answer only, batches of similar length.

The bandit tier's loop (``aopcore_testbed.model.pretrain``) pads every batch to its longest row; here prompts run
from 20 to 190 characters, so batches are cut from length-sorted runs of the shuffled data (a run is 16 batches),
which spends the compute on tokens instead of padding. Everything is drawn from one seeded generator: with torch
pinned to one thread (``regenerate`` does that) the result is the same bytes on every run.
"""

from __future__ import annotations

from pathlib import Path


def batches(lengths: list[int], batch_size: int, generator) -> list[list[int]]:
    """Indices in batches: a seeded shuffle, sorted by length within runs of 16 batches, batch order reshuffled."""
    import torch

    perm = torch.randperm(len(lengths), generator=generator).tolist()
    run = batch_size * 16
    out: list[list[int]] = []
    for start in range(0, len(perm), run):
        chunk = sorted(perm[start : start + run], key=lambda i: (lengths[i], i))
        out += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(out), generator=generator).tolist()
    return [out[i] for i in order]


def pretrain(
    src: Path,
    out: Path,
    rows: list[dict[str, str]],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train the model in ``src`` on ``rows`` (instruction, response) and write it to ``out`` atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aopcore_testbed.model import _save, sft_examples

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    examples = sft_examples(tok, rows)
    lengths = [len(x) for x, _ in examples]
    gen = torch.Generator().manual_seed(seed)
    plan = [batches(lengths, batch_size, gen) for _ in range(epochs)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=sum(map(len, plan)), pct_start=0.1)
    model.train()
    losses = []
    for epoch in plan:
        total = 0.0
        for batch in epoch:
            width = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                x, y = examples[i]
                ids[row, : len(x)], labels[row, : len(y)], attn[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(examples))
    _save(model, tok, out)
    return {"loss_per_epoch": losses}
