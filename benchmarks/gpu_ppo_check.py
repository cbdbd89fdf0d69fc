"""GPU check: our PPO on a GPT-2-medium-sized model (random weights) on CUDA; JSON with step time, tokens/s, peak memory.

Sized to finish in well under 5 minutes on one H100/A100. Builds a GPT-2 medium config
(24 layers, 1024 wide, 50,257-token vocabulary) and a word-level tokenizer in-process,
so it needs no downloads. ``--small`` shrinks everything for a CPU smoke run (CI).

    python benchmarks/gpu_ppo_check.py --steps 6 --out gpu_ppo.json
    python benchmarks/gpu_ppo_check.py --small --device cpu --steps 2
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402


def build_model(folder: Path, small: bool) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab_size = 512 if small else 50257
    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2, **{f"w{i}": i + 3 for i in range(vocab_size - 3)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")
    dims = dict(n_embd=64, n_layer=2, n_head=2) if small else dict(n_embd=1024, n_layer=24, n_head=16)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_positions=1024, bos_token_id=1, eos_token_id=1, pad_token_id=0, **dims)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class DistinctWords:
    """Reward: share of distinct words in the response (any RewardModel works; this one is free)."""

    def score(self, prompts, responses):
        return [len(set(r.split())) / max(len(r.split()), 1) for r in responses]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    from aopcore import Prompt

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "gpt2-medium-random", args.small)
        rng = random.Random(0)
        vocab = 509 if args.small else 50254
        prompts = [Prompt(str(i), " ".join(f"w{rng.randrange(vocab)}" for _ in range(48)), "c") for i in range(16 * args.steps)]
        opts = PPOOptions(model=str(model_dir), device=args.device, batch_size=16, mini_batch_size=8, ppo_epochs=4,
                          generation={"max_new_tokens": 64, "temperature": 0.9, "top_k": 0, "top_p": 1.0})
        trainer = PPOPolicyTrainer(opts)
        device = trainer.choice.device
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        out = Path(tmp) / "p1"
        out.mkdir()
        start = time.perf_counter()
        stats = trainer.train(model_dir, prompts, DistinctWords(), passes=1, out=out, seed=0)
        wall = time.perf_counter() - start
        steps = stats.metrics
        warm = steps[1:] or steps  # the first step includes CUDA warm-up
        step_s = sum(m["time/step_s"] for m in warm) / len(warm)
        result = {
            "benchmark": "gpu_ppo_check", "device": device, "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
            "dtype": str(trainer.choice.dtype), "model": "gpt2-medium config, random weights" if not args.small else "tiny gpt2",
            "parameters_m": round(sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model_dir).parameters()) / 1e6, 1),
            "batch_size": 16, "mini_batch_size": 8, "ppo_epochs": 4, "new_tokens": 64, "steps": len(steps), "wall_s": round(wall, 2),
            "step_s_mean_after_first": round(step_s, 3), "episodes_per_s": round(16 / step_s, 2),
            "generated_tokens_per_s": round(sum(m["tokens/response_len_mean"] * 16 for m in warm) / sum(m["time/step_s"] for m in warm), 1),
            "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
            "skipped_minibatches": sum(m["ppo/skipped_minibatches"] for m in steps),
        }
    emit(result, args.out)


if __name__ == "__main__":
    main()
