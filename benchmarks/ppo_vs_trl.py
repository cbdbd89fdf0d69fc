"""PPO episodes/s: ours vs TRL v1.12.0's PPOTrainer (its last release with PPO), same model, reward model,
batch sizes and response length, on this machine. TRL runs in a virtualenv of its own
(benchmarks/.venv-trl112, created on first use), so the comparison never disturbs the project's environment.

    .venv/bin/python benchmarks/ppo_vs_trl.py --episodes 64 --out benchmarks/results/ppo_vs_trl.json

Model: a GPT-2 (4 layers, width 256) with a 2,000-word word-level vocabulary, random weights; the reward model
is a GPT-2 sequence classifier on the same tokenizer (TRL's PPO requires a shared tokenizer; ours scores text).
TRL 1.12 implements the later "PPOv2" algorithm (separate value model, score at the end, fixed KL), ours the
classic one (value head on the trunk, adaptive KL): the figure compares cost per episode, not algorithms.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402

HERE = Path(__file__).resolve().parent
TRL_VENV = HERE / ".venv-trl112"
VOCAB = 2000


def build(folder: Path) -> tuple[Path, Path, list[str]]:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2, **{f"w{i}": i + 3 for i in range(VOCAB - 3)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")
    torch.manual_seed(0)
    common = dict(
        vocab_size=VOCAB,
        n_positions=256,
        n_embd=256,
        n_layer=4,
        n_head=4,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    GPT2LMHeadModel(GPT2Config(**common)).save_pretrained(folder / "policy")
    tok.save_pretrained(folder / "policy")
    GPT2ForSequenceClassification(GPT2Config(num_labels=1, **common)).save_pretrained(folder / "rm")
    tok.save_pretrained(folder / "rm")
    return folder / "policy", folder / "rm", make_prompts()


def make_prompts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(f"w{rng.randrange(VOCAB - 3)}" for _ in range(24)) for _ in range(64)]


def ensure_trl_venv() -> Path:
    python = TRL_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TRL_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "torch==2.13.0",
                "trl==1.12.0",
                "transformers",
                "accelerate",
                "datasets",
            ],
            check=True,
        )
    return python


def run_trl(policy: Path, rm: Path, prompts: list[str], episodes: int, response_length: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(policy)
    tok.padding_side = "left"
    ids = [tok(p)["input_ids"] for p in prompts]
    data = Dataset.from_dict({"input_ids": [ids[i % len(ids)] for i in range(episodes)]})
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out,
            per_device_train_batch_size=16,
            num_mini_batches=2,
            num_ppo_epochs=4,
            response_length=response_length,
            total_episodes=episodes,
            temperature=0.9,
            learning_rate=1.41e-5,
            report_to="none",
            bf16=False,
            fp16=False,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            num_sample_generations=0,
            local_rollout_forward_batch_size=16,
            seed=0,
            stop_token="eos",
        )
        trainer = PPOTrainer(
            args=config,
            processing_class=tok,
            model=AutoModelForCausalLM.from_pretrained(policy),
            ref_model=AutoModelForCausalLM.from_pretrained(policy),
            reward_model=AutoModelForSequenceClassification.from_pretrained(rm),
            value_model=AutoModelForSequenceClassification.from_pretrained(rm),
            train_dataset=data,
            eval_dataset=data.select(range(16)),
        )
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    return {"episodes": episodes, "wall_s": round(wall, 2), "episodes_per_s": round(episodes / wall, 3)}


def run_ours(policy: Path, rm: Path, prompts: list[str], episodes: int, response_length: int) -> dict:
    from aopcore import Prompt
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer
    from aopcore_hf.rewards import ClassifierOptions, SequenceClassifierReward

    reward = SequenceClassifierReward(ClassifierOptions(model=str(rm), device="auto"))
    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(policy),
            batch_size=16,
            mini_batch_size=8,
            ppo_epochs=4,
            generation={"max_new_tokens": response_length, "temperature": 0.9},
        )
    )
    items = [Prompt(str(i), prompts[i % len(prompts)], "c") for i in range(episodes)]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trainer.train(policy, items, reward, passes=1, out=Path(out), seed=0)
        wall = time.perf_counter() - start
    return {"episodes": episodes, "wall_s": round(wall, 2), "episodes_per_s": round(episodes / wall, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--response-length", type=int, default=32)
    ap.add_argument("--child-trl", nargs=2, metavar=("POLICY", "RM"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child_trl:
        print(
            json.dumps(
                run_trl(
                    Path(args.child_trl[0]),
                    Path(args.child_trl[1]),
                    make_prompts(),
                    args.episodes,
                    args.response_length,
                )
            )
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        policy, rm, prompts = build(Path(tmp))
        python = ensure_trl_venv()
        child = subprocess.run(
            [
                str(python),
                __file__,
                "--child-trl",
                str(policy),
                str(rm),
                "--episodes",
                str(args.episodes),
                "--response-length",
                str(args.response_length),
            ],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            raise SystemExit(f"TRL run failed:\n{child.stderr[-3000:]}")
        trl = json.loads(child.stdout.strip().splitlines()[-1])
        ours = run_ours(policy, rm, prompts, args.episodes, args.response_length)
    emit(
        {
            "benchmark": "ppo_vs_trl",
            "trl_version": "1.12.0",
            "model": "gpt2 4x256, 2k-word vocab, random",
            "batch_size": 16,
            "mini_batch_size": 8,
            "ppo_epochs": 4,
            "response_length": args.response_length,
            "trl": trl,
            "ours": ours,
            "speed_ratio_ours_over_trl": round(ours["episodes_per_s"] / trl["episodes_per_s"], 3),
            "goal": "ours >= 2x TRL",
            "meets_goal": ours["episodes_per_s"] >= 2 * trl["episodes_per_s"],
            "load_average_1m_at_end": round(__import__("os").getloadavg()[0], 2),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
