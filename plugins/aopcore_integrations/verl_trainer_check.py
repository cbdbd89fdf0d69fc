"""Which veRL trainer a configuration selects, and whether aopcore's hooks fire in it.

Shared by the dataset (:mod:`aopcore_integrations.verl`, both trainers) and the V1 replay buffer
(:mod:`aopcore_integrations.verl_v1`): a configuration where neither hook would fire is refused at start, in one
line naming the key to set, so a curriculum never trains without hearing back.
"""

from __future__ import annotations

from typing import Any

from aopcore.errors import InputError

SAMPLER_PATH = "pkg://aopcore_integrations.verl_v1"
SAMPLER_NAME = "AopcoreReplayBuffer"
DATASET_PATH = "pkg://aopcore_integrations.verl"
DATASET_NAME = "AopcoreDataset"


def _get(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if node is None:
            return None
        node = node.get(part) if hasattr(node, "get") else None
    return node


def _root(data_config: Any) -> Any:
    """The whole veRL config a data config belongs to (OmegaConf keeps the parent), or None."""
    get_root = getattr(data_config, "_get_root", None)
    return get_root() if callable(get_root) else None


def _names(cfg: Any, key: str, name: str, path: str) -> bool:
    spec = _get(cfg, key)
    module = path.split("://")[-1]
    return bool(
        spec is not None
        and spec.get("name") == name
        and str(spec.get("path") or "").split("://")[-1].replace("/", ".").removesuffix(".py").endswith(module)
    )


def trainer_problems(cfg: Any) -> list[str]:
    """What in a whole veRL config keeps aopcore's hooks from firing, one line per problem naming the key to set.

    Returns [] for a config without ``trainer.use_v1`` (a veRL that has only the legacy trainer).
    """
    use_v1 = _get(cfg, "trainer.use_v1")
    ours_sampler = _names(cfg, "trainer.v1.sampler.custom_sampler", SAMPLER_NAME, SAMPLER_PATH)
    if use_v1 is None:
        return []
    if not use_v1:
        if ours_sampler:
            return [
                "trainer.use_v1: false runs veRL's legacy trainer, which never loads trainer.v1.sampler.custom_sampler "
                "(aopcore's V1 sampler); set trainer.use_v1=true, or drop the custom_sampler keys to use the legacy "
                "trainer's on_batch_end"
            ]
        return []
    if not _names(cfg, "data.custom_cls", DATASET_NAME, DATASET_PATH):
        return [
            f"data.custom_cls: aopcore's V1 sampler needs aopcore's dataset; set data.custom_cls.path={DATASET_PATH} "
            f"data.custom_cls.name={DATASET_NAME}"
        ]
    if not ours_sampler:
        return [
            f"trainer.v1.sampler.custom_sampler: veRL's V1 trainer (trainer.use_v1=true, the default) never calls "
            f"on_batch_end, so the curriculum would hear no reward; set trainer.v1.sampler.custom_sampler.path="
            f"{SAMPLER_PATH} trainer.v1.sampler.custom_sampler.name={SAMPLER_NAME} (or trainer.use_v1=false)"
        ]
    problems = []
    mode = _get(cfg, "trainer.v1.trainer_mode")
    if mode != "sync":
        problems.append(
            f"trainer.v1.trainer_mode: {mode}; aopcore's V1 sampler serves the sync trainer (each draw chosen "
            "after the previous step's rewards); set trainer.v1.trainer_mode=sync"
        )
    gen = _get(cfg, "data.gen_batch_size")
    if gen != 1:
        problems.append(
            f"data.gen_batch_size: {gen}; aopcore's V1 sampler refills dropped groups prompt by prompt; "
            "set data.gen_batch_size=1"
        )
    if _get(cfg, "algorithm.filter_groups.enable"):
        problems.append(
            "algorithm.filter_groups.enable: a custom sampler does not apply veRL's DAPO filter; set "
            "algorithm.filter_groups.enable=false (aopcore's dynamic-filter curriculum filters groups)"
        )
    if _get(cfg, "reward.reward_model.enable") and not _get(cfg, "reward.reward_model.enable_resource_pool"):
        problems.append(
            "reward.reward_model.enable_resource_pool: a colocated reward model scores after sampling, so "
            "the curriculum would see no reward; set reward.reward_model.enable_resource_pool=true"
        )
    return problems


def check_trainer_config(data_config: Any) -> bool:
    """Raise InputError for a trainer aopcore's hooks would miss; True when the V1 trainer runs (sampler mode)."""
    root = _root(data_config)
    if root is None:
        return False
    problems = trainer_problems(root)
    if problems:
        raise InputError(*problems)
    return bool(_get(root, "trainer.use_v1"))
