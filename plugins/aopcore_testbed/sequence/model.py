"""The sequence tier's policy: a small GPT-2 with a small byte-level BPE tokenizer, so every answer is several tokens.

``testbed-seq`` (the start policy) ships with the package (``weights/testbed-seq/``, about 1.5 MB) and is copied
into the cache under a hash of its files, like ``testbed-tiny``; ``python -m aopcore_testbed.sequence.regenerate``
made it. ``testbed-seq-base`` is the random-initialised model, built in-process from a seed.

The tokenizer is byte-level BPE (every text encodes and decodes back exactly) trained, deterministically, on the
tasks' fixed wording only (``Task.wording``), with digits split one per token: the instructions become a few
tokens each, while the words, letters and numbers a question varies in stay close to characters. So a reversed
word, a sum or a reversed list is several sampled tokens (the mean answer length is in the manifest), and a prompt
is 10-60 tokens instead of 20-190 characters, which is what lets the policy pretrain in minutes on a CPU. The
prompt format (a chat template) is the question and a newline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aopcore_testbed.model import _install_shipped, _save, tiny_gpt2

SPECIALS = ["[PAD]", "[UNK]", "[EOS]"]
NAME = "testbed-seq"
BPE_VOCAB = 400  # an upper bound: the merges run out first (the wording is short)

# the prompt format: the question, a newline, then the answer (the plain instruction template would add 13 tokens
# to every prompt); a system text, when a trainer sends one, comes first
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


def wording() -> list[str]:
    """The texts the tokenizer is trained on: each task's fixed words, in the tasks' order."""
    from aopcore_testbed.sequence.tasks import TASKS

    return [t.wording for t in TASKS.values()]


def bpe_tokenizer():
    """Byte-level BPE trained on ``wording()`` (digits one per token); decoding gives the text back exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(wording(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[EOS]",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build(
    folder: Path, *, n_embd: int = 96, n_layer: int = 3, n_head: int = 4, n_positions: int = 128, seed: int = 0
) -> Path:
    """Write the random-initialised model and its tokenizer into ``folder`` atomically."""
    import torch

    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    _save(tiny_gpt2(tok, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head), tok, folder)
    return folder


# the recipe of the shipped "testbed-seq" weights (python -m aopcore_testbed.sequence.regenerate); a change (or other
# SFT data) gives the base model a new folder name and fails tests/testbed/test_sequence_weights.py until regenerated
RECIPE = {
    "n_embd": 96,
    "n_layer": 3,
    "n_head": 4,
    "n_positions": 128,
    "epochs": 45,
    "lr": 3e-3,
    "batch_size": 32,
    "seed": 0,
}
ARCH = ("n_embd", "n_layer", "n_head", "n_positions", "seed")


def recipe_id() -> str:
    from aopcore_testbed.sequence.sets import POOL_CAP, SIZES
    from aopcore_testbed.sequence.tasks import TASKS

    plan = {name: {lv: vars(level) for lv, level in t.levels.items()} for name, t in TASKS.items()}
    suffixes = {name: t.suffix for name, t in TASKS.items()}
    sets = [SIZES, POOL_CAP]  # the SFT data leaves out every held-out, test and pool question
    blob = json.dumps([RECIPE, plan, wording(), BPE_VOCAB, suffixes, sets], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def shipped_weights() -> Path:
    from aopcore_testbed.sequence.shipped import WEIGHTS

    return WEIGHTS


def shipped_key() -> str:
    """A hash of the shipped files (the manifest excluded): it changes whenever the weights could differ."""
    from aopcore_testbed.shipped import digest, file_hashes

    return digest(file_hashes(shipped_weights()))[:16]


def ensure_alias(name: str, models_dir: Path) -> Path:
    """The folder behind ``testbed-seq`` (the shipped policy, copied once under a hash of its files) or
    ``testbed-seq-base`` (the random-initialised model, built from the recipe's seed under the recipe's id)."""
    if name == NAME:
        folder = models_dir / f"{NAME}-{shipped_key()}"
        if not (folder / "config.json").exists():
            if not (shipped_weights() / "config.json").exists():
                from aopcore import RuntimeFailure

                raise RuntimeFailure(
                    f"{NAME}: the shipped weights are missing from {shipped_weights()} "
                    "(python -m aopcore_testbed.sequence.regenerate rebuilds them)"
                )
            _install_shipped(folder, shipped_weights())
        return folder
    base = models_dir / f"{NAME}-base-{recipe_id()}"
    if not (base / "config.json").exists():
        build(base, **{k: RECIPE[k] for k in ARCH})
    return base
