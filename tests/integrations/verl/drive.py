"""Drive aopcore's veRL dataset with veRL's own classes, as RayPPOTrainer.fit does, minus the GPU workers.

Run under .venv-verl/bin/python (tests/integrations/test_verl_adapter.py does). What is veRL's own code here: the data config
(verl/trainer/config/data/legacy_data.yaml), ``RayPPOTrainer._create_dataloader`` (create_rl_dataset with
data.custom_cls, create_rl_sampler, the StatefulDataLoader and RLHFDataset's collate_fn), ``DataProto``,
``_get_gen_batch``, ``DataProto.repeat/union/reorder``, ``extract_reward``, the dataloader checkpoint
(``state_dict`` into data.pt, ``load_state_dict`` with veRL's epoch-boundary rule). Simulated: the rollout
(responses are random tokens) and the reward (a per-category pass rate, seeded by step and row), in place of
vLLM workers and a reward function.

Writes one JSON line per step (``--out``): step, round, the prompt ids and categories drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
from pathlib import Path

import numpy as np
import torch
import verl
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.trainer.ppo.reward import extract_reward

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the tests root (helpers)
from helpers.tiny_models import word_tokenizer  # noqa: E402

# the simulated policy: per-category probability that a response is right (the testbed's start accuracies
# say subtraction is weak; this policy has since learned it, and is weak at reversal and counting)
PASS = {
    "addition": 0.9,
    "subtraction": 0.9,
    "maximum": 0.8,
    "conversion": 0.8,
    "uppercase": 0.5,
    "reversal": 0.1,
    "counting": 0.1,
}
START = {
    "addition": 0.93,
    "conversion": 0.65,
    "uppercase": 0.55,
    "maximum": 0.50,
    "reversal": 0.38,
    "counting": 0.25,
    "subtraction": 0.15,
}
N = 4  # actor_rollout_ref.rollout.n
RESPONSE_LEN = 6


def tokenizer():
    tok = word_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    return tok


def write_inputs(work: Path) -> None:
    """veRL-format validation parquet and the initial evaluation (the start policy on the held-out set)."""
    import datasets

    from aopcore.data.sources import load_source
    from aopcore.records import EvalRecord, write_jsonl

    test = load_source("testbed:test", work)[:14]
    rows = [
        {
            "data_source": "testbed",
            "prompt": [{"role": "user", "content": q.text}],
            "ability": q.category,
            "reward_model": {"style": "rule", "ground_truth": ""},
            "extra_info": {"index": k},
        }
        for k, q in enumerate(test)
    ]
    datasets.Dataset.from_list(rows).to_parquet(str(work / "val.parquet"))
    heldout = load_source("testbed:heldout", work)
    records = [
        EvalRecord(q.id, q.text, q.category, "", 1.0 if random.Random(q.id).random() < START[q.category] else 0.0)
        for q in heldout
    ]
    write_jsonl(work / "initial_evaluation.jsonl", records)


def config(work: Path, state: Path, batch: int, budget: int, rounds: int, steps_per_round: int, curriculum: str):
    data = OmegaConf.load(Path(verl.__file__).parent / "trainer" / "config" / "data" / "legacy_data.yaml")
    data.train_files = str(work / "train.parquet")  # not read by aopcore's dataset
    data.val_files = str(work / "val.parquet")
    data.train_batch_size = batch
    data.dataloader_num_workers = 0
    data.seed = 1
    data.custom_cls.path = "pkg://aopcore_integrations.verl"
    data.custom_cls.name = "AopcoreDataset"
    data.aopcore = {
        "curriculum": "aop",
        "options": {"draws": 8, "questions_per_call": 12},
        "heldout": "testbed:heldout",
        "feedback": "testbed-writer",
        "reward": "verifier",
        "budget": budget,
        "rounds": rounds,
        "steps_per_round": steps_per_round,
        "seed": 0,
        "state_dir": str(state),
        "initial_evaluation": str(work / "initial_evaluation.jsonl"),
    }
    if curriculum == "toml":  # the same AOP setup from an aopcore config file
        data.aopcore = {
            "config": str(Path(__file__).with_name("aop.toml")),
            "state_dir": str(state),
            "steps_per_round": steps_per_round,
            "initial_evaluation": str(work / "initial_evaluation.jsonl"),
        }
    if curriculum == "category-bandit":  # online: chooses every draw from the rollouts (the per-step channel)
        data.aopcore = {
            "curriculum": "category-bandit",
            "options": {"pool": "testbed:pool", "temperature": 0.05},
            "heldout": "testbed:heldout",
            "budget": budget,
            "rounds": rounds,
            "steps_per_round": steps_per_round,
            "seed": 0,
            "state_dir": str(state),
        }
    # verl 0.9.1 defaults to the V1 trainer: this is the legacy form (trainer.use_v1=false), where on_batch_end fires
    return OmegaConf.create(
        {"data": data, "trainer": {"total_epochs": 1, "total_training_steps": None, "use_v1": False}}
    )


def simulate_rollout(trainer: RayPPOTrainer, batch: DataProto, step: int) -> DataProto:
    """What fit() does between drawing a batch and on_batch_end, with the workers replaced by a simulation."""
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch.batch))], dtype=object)
    gen_batch = trainer._get_gen_batch(batch)
    gen_out = gen_batch.repeat(repeat_times=N, interleave=True)
    rows = len(gen_out)
    g = torch.Generator().manual_seed(step)
    lengths = torch.randint(2, RESPONSE_LEN + 1, (rows,), generator=g)
    mask = (torch.arange(RESPONSE_LEN)[None, :] < lengths[:, None]).to(torch.int64)
    responses = torch.randint(3, 20, (rows, RESPONSE_LEN), generator=g) * mask
    out = DataProto.from_dict(tensors={"responses": responses, "response_mask": mask, "attention_mask": mask})
    batch = batch.repeat(repeat_times=N, interleave=True)
    batch = batch.union(out)
    # the reward loop's output: the sequence score on the last response token (rm_scores), then extract_reward
    scores = torch.zeros(rows, RESPONSE_LEN)
    for k, info in enumerate(batch.non_tensor_batch["extra_info"]):
        right = random.Random(f"{step}:{k}").random() < PASS[info["aopcore_category"]]
        scores[k, int(lengths[k]) - 1] = 1.0 if right else 0.0
    batch.batch["rm_scores"] = scores
    reward_tensor, _ = extract_reward(batch)
    batch.batch["token_level_scores"] = reward_tensor
    batch.batch["token_level_rewards"] = reward_tensor
    # balance_batch reorders rows across DP ranks: grouping must not depend on adjacency
    perm = torch.randperm(rows, generator=torch.Generator().manual_seed(1000 + step))
    batch.reorder(perm)
    return batch


def check_reward_function(trainer: RayPPOTrainer) -> None:
    """aopcore's compute_score, loaded by veRL's own custom-reward loader, scores a curriculum row's answers."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from aopcore_testbed.skills import skill_of

    fn = get_custom_reward_fn(
        OmegaConf.create(
            {
                "reward": {
                    "custom_reward_function": {
                        "path": "pkg://aopcore_integrations.verl",
                        "name": "compute_score",
                        "reward_kwargs": {"reward": "verifier"},
                    }
                }
            }
        )
    )
    row = trainer.train_dataset[0]  # a peek at the round's first prompt: no draw
    info = row["extra_info"]
    right = skill_of(info["aopcore_text"]).solve(info["aopcore_text"])
    scores = [
        fn(data_source=row["data_source"], solution_str=ans, ground_truth="", extra_info=info)
        for ans in (right, right + "0 wrong")
    ]
    assert scores == [1.0, 0.0], (info["aopcore_text"], right, scores)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps-per-round", type=int, default=2)
    ap.add_argument("--curriculum", default="aop", choices=["aop", "toml", "category-bandit"])
    ap.add_argument("--save-at", type=int, default=0, help="save veRL's dataloader checkpoint at this step")
    ap.add_argument("--crash-at", type=int, default=0, help="os._exit after this step's on_batch_end")
    ap.add_argument(
        "--crash-before-report", action="store_true", help="crash after the checkpoint, before on_batch_end"
    )
    ap.add_argument("--resume", type=Path, default=None, help="a global_step_N folder to resume from")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "val.parquet").exists():
        write_inputs(args.work)
    cfg = config(args.work, args.state, args.batch, args.budget, args.rounds, args.steps_per_round, args.curriculum)

    trainer = RayPPOTrainer.__new__(RayPPOTrainer)  # no Ray workers: only the data side of __init__
    trainer.config, trainer.tokenizer, trainer.processor = cfg, tokenizer(), None
    trainer._create_dataloader(None, None, None, None)
    dataset = trainer.train_dataset
    assert type(dataset).__name__ == "AopcoreDataset", type(dataset)
    assert type(trainer.val_dataset).__name__ == "AopcoreDataset" and len(trainer.val_dataset) == 14

    if args.resume is None:
        check_reward_function(trainer)
    global_steps = 0
    if args.resume is not None:  # RayPPOTrainer._load_checkpoint's dataloader part
        global_steps = int(args.resume.name.split("_")[-1])
        steps_per_epoch = len(trainer.train_dataloader)
        if not (global_steps % steps_per_epoch == 0):
            trainer.train_dataloader.load_state_dict(torch.load(args.resume / "data.pt", weights_only=False))
    total = trainer.total_training_steps
    current_epoch = global_steps // len(trainer.train_dataloader)
    global_steps += 1
    with open(args.out, "a", encoding="utf-8") as out:
        for _epoch in range(current_epoch, cfg.trainer.total_epochs):
            for batch_dict in trainer.train_dataloader:
                batch = DataProto.from_single_dict(batch_dict)
                infos = list(batch.non_tensor_batch["extra_info"])
                out.write(
                    json.dumps(
                        {
                            "step": global_steps,
                            "round": infos[0]["aopcore_round"],
                            "ids": [i["aopcore_id"] for i in infos],
                            "categories": [i["aopcore_category"] for i in infos],
                        }
                    )
                    + "\n"
                )
                out.flush()
                batch = simulate_rollout(trainer, batch, global_steps)
                if global_steps == args.save_at:  # RayPPOTrainer._save_checkpoint: before on_batch_end
                    folder = args.state.parent / "ckpt" / f"global_step_{global_steps}"
                    folder.mkdir(parents=True, exist_ok=True)
                    torch.save(trainer.train_dataloader.state_dict(), folder / "data.pt")
                    if args.crash_before_report:
                        os._exit(3)
                if global_steps >= total:
                    return 0
                dataset.on_batch_end(batch=batch)
                if global_steps == args.crash_at:
                    os._exit(3)
                global_steps += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
