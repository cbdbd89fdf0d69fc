"""What a stage leaves in memory: a training stage starts and ends with the cyclic collector run over every
generation, so a model a lighter stage dropped (models refer to themselves) is gone before a training peak; the
stages between trainings collect only the young generations (a full collection walks every object: 0.3 s with
torch and transformers loaded, once per stage)."""

import gc
import weakref
from pathlib import Path

from aopcore.engine.stagerun import commit_stage
from aopcore.storage.store import RunStore


class Model:
    """Stands for a model: it refers to itself, so only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _stage(store: RunStore, stage_id: str, kind: str, work) -> None:
    commit_stage(store, stage_id, kind, work, outputs=lambda extra: [], order=0, arm=None, worker="w")


def test_a_training_stage_starts_after_the_garbage_of_lighter_stages_is_collected(tmp_path: Path):
    store = RunStore(tmp_path)
    dropped: list[weakref.ref] = []

    def evaluate():
        model = Model()
        dropped.append(weakref.ref(model))
        gc.collect(2)  # promote it (a long stage): only a full collection can free it now
        gc.collect(2)
        return {}

    seen_at_training: list[bool] = []
    gc.disable()  # no automatic collection in between: what frees the model is the stage runner
    try:
        gc.freeze()  # the objects before the test stay out of it
        _stage(store, "evaluation", "evaluate", evaluate)
        alive_after_light = dropped[0]() is not None
        _stage(store, "train", "train", lambda: seen_at_training.append(dropped[0]() is None) or {})
    finally:
        gc.unfreeze()
        gc.enable()
    assert alive_after_light  # the light stage's end did not walk the old generation
    assert seen_at_training == [True]  # but the training stage started without it
