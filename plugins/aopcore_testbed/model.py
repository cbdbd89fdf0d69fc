"""The testbed policy's starting point: a small GPT-2 with a word-level tokenizer.

``testbed-tiny`` (the start policy) ships with the package (``weights/testbed-tiny/``, about half a megabyte) and
is copied into the cache under a hash of its files, so every machine, thread count and run order starts from the
same bytes. ``python -m aopcore_testbed.regenerate`` is how those weights were made, and rebuilds them after a
change to the recipe, the vocabulary or the SFT data (pinned to one thread: the result is deterministic).
``testbed-tiny-base`` is the random-initialised model, built in-process from a seed.

Nothing is downloaded: the vocabulary is every word, number and punctuation mark the testbed's questions and
answers use (plus the prompt format's). Every answer is then a single token, which makes pretraining take about
a minute and RL a contextual bandit that a CPU trains in seconds; the verifier still reads free text, so a
real LLM's answers are checked the same way. Text outside the vocabulary becomes ``[UNK]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[EOS]"]


def vocabulary() -> list[str]:
    """Sorted tokens of every testbed question, answer and wrong answer, and of the instruction format."""
    from tokenizers.pre_tokenizers import Whitespace

    from aopcore_hf.generation import PLAIN_TEMPLATE
    from aopcore_testbed.skills import SKILLS

    split = Whitespace()
    texts = [PLAIN_TEMPLATE]
    for skill in SKILLS.values():
        for q in skill.universe():
            texts += [q, skill.solve(q) or "", skill.distractor(q)]
    return sorted({tok for t in texts for tok, _ in split.pre_tokenize_str(t)})


def word_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def tiny_gpt2(tok, *, n_positions: int, n_embd: int, n_layer: int, n_head: int):
    """A randomly initialised GPT-2 for ``tok`` (from torch's global seed), without dropout: both testbed tiers'
    start policies, so their training is a deterministic function of the seed."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def sft_examples(tok, rows: list[dict[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per row (instruction, response) in the policy trainers' prompt format, the loss on the
    response and its end token only: what both tiers' pretraining loops train on."""
    from aopcore_hf.generation import format_prompt

    examples = []
    for r in rows:
        prompt = tok(format_prompt(tok, r["instruction"]), add_special_tokens=False)["input_ids"]
        answer = tok(r["response"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        examples.append((prompt + answer, [-100] * len(prompt) + answer))
    return examples


def build(folder: Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4, seed: int = 0) -> Path:
    """Write the random-initialised model and its tokenizer into ``folder`` atomically (a crash leaves nothing)."""
    import torch

    tok = word_tokenizer()
    torch.manual_seed(seed)
    _save(tiny_gpt2(tok, n_positions=64, n_embd=n_embd, n_layer=n_layer, n_head=n_head), tok, folder)
    return folder


def _save(model, tok, folder: Path) -> None:
    """Write model and tokenizer beside ``folder`` and publish them there in one step (concurrent builders are safe)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, folder: Path) -> None:
    """Rename a finished folder into place; if another process got there first, keep theirs (they are identical)."""
    try:
        os.replace(tmp, folder)
    except OSError:
        if not (folder / "config.json").exists():
            raise


def ensure(folder: Path) -> Path:
    """The random-initialised model folder, built on first use."""
    if not (folder / "config.json").exists():
        build(folder)
    return folder


def pretrain(
    src: Path,
    out: Path,
    rows: list[dict[str, str]],
    *,
    epochs: int = 6,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Supervised training on ``rows`` (instruction, response), loss on the response only; writes ``out`` atomically.

    A plain loop rather than the SFT stage: it made the shipped weights (``aopcore_testbed.regenerate``, one
    thread, deterministic) and must stay fast and reproducible; the prompt format is the one the policy trainers use.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    examples = sft_examples(tok, rows)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps = epochs * ((len(examples) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(examples), generator=gen).tolist()
        total = 0.0
        for start in range(0, len(perm), batch_size):
            chunk = [examples[i] for i in perm[start : start + batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id)
            labels = torch.full((len(chunk), width), -100)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (x, y) in enumerate(chunk):
                ids[row, : len(x)], labels[row, : len(y)], attn[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            total += float(loss.detach()) * len(chunk)
        losses.append(total / len(examples))
    _save(model, tok, out)
    return {"epochs": epochs, "loss_per_epoch": losses}


# the recipe of the shipped "testbed-tiny" weights (python -m aopcore_testbed.regenerate) and of the base model;
# a change (or a new vocabulary) gives the base a new folder name, and fails tests/testbed/test_testbed_weights.py until
# the shipped weights are regenerated
RECIPE = {"n_embd": 64, "n_layer": 2, "n_head": 4, "epochs": 20, "lr": 3e-3, "batch_size": 32, "seed": 0}


def _recipe_id() -> str:
    import hashlib
    import json

    from aopcore_testbed.sets import SFT_PLAN, SPREAD

    blob = json.dumps([RECIPE, {c: vars(p) for c, p in SFT_PLAN.items()}, SPREAD, vocabulary()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def shipped_weights() -> Path:
    """The packaged ``testbed-tiny`` folder (weights, tokenizer, config and ``manifest.json``)."""
    from aopcore_testbed.shipped import WEIGHTS

    return WEIGHTS


def shipped_key() -> str:
    """A hash of the shipped files (the manifest excluded): it changes whenever the weights could differ."""
    from aopcore_testbed.shipped import digest, file_hashes

    return digest(file_hashes(shipped_weights()))[:16]


def _install_shipped(target: Path, source: Path | None = None) -> Path:
    """Copy a shipped start policy (``testbed-tiny`` unless ``source`` names another) into ``target`` atomically
    (a crash leaves nothing; concurrent copies are safe)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for p in sorted((source or shipped_weights()).iterdir()):
            if p.is_file():
                shutil.copyfile(p, tmp / p.name)
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_alias(name: str, models_dir: Path) -> Path:
    """The folder behind a model alias, in the cache.

    ``testbed-tiny``: the shipped start policy, copied to ``testbed-tiny-<hash of its files>`` on first use (the
    same bytes on every machine; a regenerated policy gets a new folder, never a stale one);
    ``testbed-tiny-base``: the random-initialised model, built from a seed (for configs that run their own
    ``[trainer.sft]``), under the recipe's id.
    """
    if name == "testbed-tiny":
        skilled = models_dir / f"testbed-tiny-{shipped_key()}"
        if not (skilled / "config.json").exists():
            if not (shipped_weights() / "config.json").exists():
                from aopcore import RuntimeFailure

                raise RuntimeFailure(
                    f"testbed-tiny: the shipped weights are missing from {shipped_weights()} "
                    "(python -m aopcore_testbed.regenerate rebuilds them)"
                )
            _install_shipped(skilled)
        return skilled
    r = RECIPE
    base = models_dir / f"testbed-tiny-base-{_recipe_id()}"
    if not (base / "config.json").exists():
        build(base, n_embd=r["n_embd"], n_layer=r["n_layer"], n_head=r["n_head"], seed=r["seed"])
    return base
