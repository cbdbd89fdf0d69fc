"""Drive aopcore's V1 adapter with veRL 0.9.1's own V1 trainer classes, minus the GPU workers and TransferQueue.

Run under .venv-verl/bin/python (tests/test_verl_adapter_v1.py does). veRL's own code here: the full config composed
by Hydra from verl/trainer/config/ppo_trainer.yaml with the overrides given (``--set``, the docs' command);
``PPOTrainerSync._build_replay_buffer`` (loading ``trainer.v1.sampler.custom_sampler`` through veRL's loader);
``_init_dataloader`` (create_rl_dataset with data.custom_cls, create_rl_sampler, the StatefulDataLoader, collate_fn);
``prepare_step`` -> ``_next_train_batch`` -> ``_submit_batch_to_rollout`` (and, as ``refill_fn``,
``_add_prompts_to_generate``); ``ReplayBuffer._sync_metadata_from_transfer_queue``, ``_clear_groups``,
``_select_prompt_uids``, ``_materialize_batch``; ``_save_checkpoint`` (data.pt, latest_checkpointed_iteration.txt) and
``_load_checkpoint`` (resume_mode=auto); with ``--real-tq``, veRL's TransferQueue on a local Ray (otherwise an
in-process key/value store with its kv_* calls, for speed). Simulated: the agent loop (random response lengths; the reward a per-category pass
rate, written as ``rm_scores`` as veRL's reward loop does before a group is marked finished), and the actor/critic
stages after sampling (the step's batch is recorded and cleared from the store, as ``fit`` does).

Writes one JSON line per step (``--out``): step, round, prompt ids and categories of the batch the sampler chose,
and the refills made.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import torch
import verl
from omegaconf import OmegaConf
from verl.trainer.ppo.v1 import replay_buffer as rb
from verl.trainer.ppo.v1 import trainer_base as tb
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drive import PASS, N, tokenizer, write_inputs  # noqa: E402


class KVStore:
    """TransferQueue's kv_* calls, in process: tags and fields per partition and key."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, dict]] = {}
        self.fields: dict[str, dict[str, dict]] = {}

    def kv_put(self, key, partition_id, fields=None, tag=None):
        self.kv_batch_put([key], partition_id, fields=[fields] if fields is not None else None, tags=[tag or {}])

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        for k, key in enumerate(keys):
            self.tags.setdefault(partition_id, {}).setdefault(key, {}).update((tags or [{}] * len(keys))[k] or {})
            if isinstance(fields, list) and fields[k] is not None:
                self.fields.setdefault(partition_id, {}).setdefault(key, {}).update(fields[k])

    def kv_list(self, partition_id=None):
        parts = [partition_id] if partition_id else list(self.tags)
        return {p: {k: dict(t) for k, t in self.tags.get(p, {}).items()} for p in parts}

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        rows = [self.fields[partition_id][k] for k in keys]
        return {f: [r[f] for r in rows] for f in select_fields}

    def kv_clear(self, keys, partition_id=None):
        for key in keys:
            self.tags.get(partition_id, {}).pop(key, None)
            self.fields.get(partition_id, {}).pop(key, None)


STORE = KVStore()


def start_transfer_queue():
    """The real TransferQueue (its controller and one storage unit are Ray actors of num_cpus=1 each)."""
    import ray
    import transfer_queue

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    transfer_queue.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    return transfer_queue


class AgentLoop:
    """AgentLoopWorkerTQ's contract: n trajectories per prompt, rewarded, then the prompt marked finished."""

    def __init__(self, pass_rates: dict[str, float], kv) -> None:
        self.pass_rates = pass_rates
        self.kv = kv

    def generate_sequences(self, batch) -> None:
        infos = batch["extra_info"]
        for i in range(len(batch)):
            uid = batch["uid"][i]
            info = infos[i].data if hasattr(infos[i], "data") else infos[i]
            step = (
                int(batch["global_steps"])
                if not hasattr(batch["global_steps"], "data")
                else int(batch["global_steps"].data)
            )
            keys, fields, tags = [], [], []
            for s in range(N):
                rng = random.Random(f"{step}:{info['aopcore_id']}:{info['aopcore_draw']}:{info['aopcore_pos']}:{s}")
                length = rng.randint(2, 6)
                scores = torch.zeros(length)
                scores[-1] = 1.0 if rng.random() < self.pass_rates[info["aopcore_category"]] else 0.0
                keys.append(f"{uid}_{s}_0")
                fields.append({"rm_scores": scores, "extra_info": info})
                tags.append(
                    {
                        "status": "success",
                        "response_len": length,
                        "global_steps": step,
                        "min_global_steps": step,
                        "max_global_steps": step,
                    }
                )
            if self.kv is not STORE:
                from verl.utils.tensordict_utils import list_of_dict_to_tensordict

                fields = list_of_dict_to_tensordict(fields)
            self.kv.kv_batch_put(keys=keys, partition_id="train", fields=fields, tags=tags)
            self.kv.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


class WorkerGroup:
    def save_checkpoint(self, local_path, *args, **kwargs):
        os.makedirs(local_path, exist_ok=True)

    def load_checkpoint(self, local_path, **kwargs):
        pass


class Callback:
    def on_save(self, **kwargs):
        pass


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return hydra_compose("ppo_trainer", overrides=overrides)


def build(overrides: list[str]) -> PPOTrainerSync:
    cfg = compose(overrides)
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)  # no workers: __init__'s sampler part, then _setup's data part
    trainer.config = cfg
    trainer.trainer_mode = cfg.trainer.v1.trainer_mode
    trainer.parameter_sync_step = 1
    trainer.replay_buffer = trainer._build_replay_buffer()
    trainer.tokenizer, trainer.processor = tokenizer(), None
    trainer._init_dataloader()
    trainer.actor_rollout_wg, trainer.use_critic, trainer.checkpoint_callback = WorkerGroup(), False, Callback()
    return trainer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], help="a veRL override (repeat)")
    ap.add_argument("--save-at", type=int, default=0)
    ap.add_argument("--crash-at", type=int, default=0, help="os._exit after this step")
    ap.add_argument("--build-only", action="store_true", help="build the trainer's sampler and dataloader, then stop")
    ap.add_argument(
        "--real-tq", action="store_true", help="the real TransferQueue on a local Ray, not the in-process store"
    )
    args = ap.parse_args()
    kv = start_transfer_queue() if args.real_tq else STORE
    if not args.real_tq:
        rb.tq = tb.tq = STORE
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "val.parquet").exists():
        write_inputs(args.work)
    trainer = build(args.set)
    if args.build_only:
        print("built", type(trainer.replay_buffer).__name__, type(trainer.train_dataset).__name__)
        return 0
    assert type(trainer.replay_buffer).__name__ == "AopcoreReplayBuffer", type(trainer.replay_buffer)
    trainer._load_checkpoint()
    trainer.agent_loop_manager = AgentLoop(PASS, kv)
    batch_size = trainer.config.data.train_batch_size
    with open(args.out, "a", encoding="utf-8") as out:
        for step in range(trainer.global_steps + 1, trainer.total_training_steps + 1):
            trainer.global_steps = step
            refills = trainer.replay_buffer.refills
            trainer.prepare_step()
            batch, metrics = trainer.replay_buffer.sample(
                global_steps=step, partition_id="train", batch_size=batch_size
            )
            uids = sorted({k.split("_")[0] for k in batch.keys})
            got = kv.kv_batch_get(keys=[f"{u}_0_0" for u in uids], partition_id="train", select_fields=["extra_info"])
            infos = [getattr(i, "data", i) for i in got["extra_info"]]
            infos.sort(key=lambda i: (i["aopcore_draw"], i["aopcore_pos"]))
            assert len(batch.keys) == batch_size * N, len(batch.keys)
            out.write(
                json.dumps(
                    {
                        "step": step,
                        "round": infos[0]["aopcore_round"],
                        "ids": [i["aopcore_id"] for i in infos],
                        "categories": [i["aopcore_category"] for i in infos],
                        "trained": [[i["aopcore_draw"], i["aopcore_pos"]] for i in infos],
                        "refills": trainer.replay_buffer.refills - refills,
                        "metrics": metrics,
                    }
                )
                + "\n"
            )
            out.flush()
            kv.kv_clear(keys=batch.keys, partition_id="train")  # fit's step 7
            if step == args.save_at:
                trainer._save_checkpoint()
            if step == args.crash_at:
                os._exit(3)
    if args.real_tq:
        kv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
