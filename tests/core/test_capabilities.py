"""Optional capabilities are Protocols (aopcore.capabilities); plugins keep them by duck typing alone."""

from __future__ import annotations

from aopcore.capabilities import (
    ChoosesPerStep,
    UsesEvaluation,
    chooses_per_step,
    needs_iterations,
    observes_steps,
    reads_evaluation,
    required_components,
    train_accepts,
    trains_from_stream,
)


class Plain:
    def prompts(self, ctx):
        return []


class Sop(Plain):
    uses_evaluation = "first"
    requires = ("feedback",)
    needs_iterations = True


class Online(Plain):
    def selector(self, ctx, planned):
        return None


class Watcher(Plain):
    def observe_step(self, batch):
        return None


class NotCallable(Plain):
    selector = None  # an attribute that is not a method is no capability


class Proxy:
    """Forwards attributes (as a lazily built plugin does)."""

    def __init__(self, target):
        self.__dict__["_t"] = target

    def __getattr__(self, name):
        return getattr(self.__dict__["_t"], name)


def test_duck_typed_capabilities_are_found_without_importing_aopcore():
    assert isinstance(Online(), ChoosesPerStep) and not isinstance(Plain(), ChoosesPerStep)
    assert isinstance(Sop(), UsesEvaluation)
    assert chooses_per_step(Online()) and observes_steps(Online())
    assert not chooses_per_step(Watcher()) and observes_steps(Watcher())
    assert not chooses_per_step(NotCallable()) and not observes_steps(Plain())
    assert reads_evaluation(Plain(), 3) and reads_evaluation(Sop(), 1) and not reads_evaluation(Sop(), 2)
    assert required_components(Sop()) == {"feedback"} and required_components(Plain()) == set()
    assert needs_iterations(Sop()) and not needs_iterations(Plain())


def test_a_proxy_is_asked_through_its_forwarding():
    assert chooses_per_step(Proxy(Online())) and not reads_evaluation(Proxy(Sop()), 2)
    assert not chooses_per_step(Proxy(Plain()))


def test_trainer_keywords_are_read_from_train():
    class Streams:
        def train(self, policy, prompts, reward, *, passes, out, seed, stream=None):
            return None

    class Plain:
        def train(self, policy, prompts, reward, *, passes, out, seed):
            return None

    assert (
        trains_from_stream(Streams()) and train_accepts(Streams(), "stream") and not train_accepts(Streams(), "scratch")
    )
    assert not trains_from_stream(Plain())
