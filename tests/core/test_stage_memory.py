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


def test_a_training_stage_starts_after_the_models_held_between_calls_are_let_go(tmp_path: Path):
    """A feedback LLM keeps its model between prompt stages; the training stage's first collection drops it, so the
    trainer's own release finds nothing left (and collects nothing a second time)."""
    from aopcore.memory import releasable, release_idle_models

    class Holder:
        def __init__(self) -> None:
            self.model: Model | None = Model()

        def release_models(self) -> None:
            self.model = None

    holder = Holder()
    model = weakref.ref(holder.model)
    releasable(holder)
    store = RunStore(tmp_path)
    _stage(store, "evaluation", "evaluate", lambda: {})
    assert model() is not None  # a light stage keeps it: the next prompt stage reuses it
    seen: list[tuple[bool, bool]] = []
    _stage(store, "train", "train", lambda: seen.append((model() is None, release_idle_models())) or {})
    assert seen == [(True, False)]


def test_frozen_survivors_are_left_out_of_later_collections():
    """What the run's process holds before its first stage (libraries, components) is not walked again."""
    from aopcore.memory import freeze_survivors

    try:
        freeze_survivors()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # this process's modules, classes and functions
        young = Model()
        assert gc.is_tracked(young) and len(gc.get_objects()) < frozen  # a full walk now sees the new objects only
    finally:
        gc.unfreeze()


def test_components_import_their_libraries_before_the_survivors_are_frozen():
    """A component class's ``import_libraries(options)`` runs first, for a built component and for one not built
    yet (which stays unbuilt: a finished stage never loads a model), so what it imports is frozen with the rest."""
    from pydantic import BaseModel

    from aopcore.engine.build import LazyComponent
    from aopcore.memory import freeze_survivors
    from aopcore.registry import Implementation

    made: list[tuple[Model, str]] = []

    class Options(BaseModel):
        name: str = "x"

    class Component:
        def __init__(self, options: Options) -> None:
            self.options = options

        @staticmethod
        def import_libraries(options: Options) -> None:
            made.append((Model(), options.name))  # stands for a library's module-level objects

    def never_built(options: Options) -> Component:
        raise AssertionError("import_libraries built the component")

    never_built.load = lambda: Component  # a LazyFactory's class, imported without building
    lazy = LazyComponent(Implementation("reward", "r", never_built, Options, "p", "d", "0"), Options(name="lazy"))
    try:
        freeze_survivors([Component(Options(name="built")), lazy, object()])
        assert [name for _, name in made] == ["built", "lazy"] and not lazy.built
        assert all(o is not made[0][0] for o in gc.get_objects())  # frozen: no collection walks it
    finally:
        gc.unfreeze()
