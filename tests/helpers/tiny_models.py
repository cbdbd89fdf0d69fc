"""Tiny random-weight models with a word-level tokenizer built in-process (no hub, no downloads).

A 24-word vocabulary makes rewards like "say 'good'" learnable in a few PPO steps.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "good",
    "bad",
    "cat",
    "dog",
    "sky",
    "blue",
    "red",
    "tree",
    "run",
    "jump",
    "yes",
    "no",
    "how",
    "why",
    "what",
    "do",
    "i",
    "the",
    "a",
    "is",
    "###",
    "instruction:",
    "response:",
    "?",
]


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[EOS]"] + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers import normalizers

    core.normalizer = normalizers.Lowercase()
    from tokenizers import decoders

    core.decoder = decoders.WordPiece(prefix="##")  # joins with spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def save_tiny_gpt2(folder: Path, *, seed: int = 0, init_range: float = 0.02) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tok = word_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=init_range,
    )
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_classifier(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(seed)
    tok = word_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=16,
        n_layer=1,
        n_head=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_t5(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    tok = word_tokenizer()
    extra = ["A", "B", "POST:", "RESPONSE", "Which", "better?"]
    tok.add_tokens(extra)
    config = T5Config(
        vocab_size=len(tok),
        d_model=16,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        d_kv=8,
        decoder_start_token_id=tok.pad_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class WordReward:
    """Fraction of response words equal to ``word``: a toy reward PPO must learn to raise."""

    def __init__(self, word: str = "good") -> None:
        self.word = word

    def score(self, prompts, responses):
        out = []
        for r in responses:
            words = r.lower().split()
            out.append(sum(w == self.word for w in words) / max(len(words), 1))
        return out


class KillAtCallReward(WordReward):
    """WordReward that SIGKILLs its own process at call number ``$KILL_AT`` (0: never): a crash mid-training stage."""

    calls = 0

    def score(self, prompts, responses):
        import os
        import signal

        KillAtCallReward.calls += 1
        if KillAtCallReward.calls == int(os.environ.get("KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().score(prompts, responses)
