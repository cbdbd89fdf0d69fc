"""From a config file to a ready :class:`Experiment`, with every problem reported up front.

``resolve`` is the preflight shared by ``aopcore validate`` and ``aopcore run``: it loads plugins,
validates every section on its own (so one error never hides another), resolves and checks path
options, reads and checks every data source, checks cross-references (arms, iterations), runs each
plugin's ``preflight(ctx)`` with the experiment's budget and categories, and checks API-key
variables. It builds nothing expensive; ``Plan.build`` builds components lazily, so a rerun of a
finished experiment loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aopcore.data.sources import LoadedSource, load_data
from aopcore.engine.config import (
    COMPONENT_SECTIONS,
    ConfigReport,
    DataSection,
    EvaluationSection,
    ExperimentConfig,
    ExperimentSection,
    missing_secrets,
    parse_config,
)
from aopcore.engine.experiment import Budget, Experiment, JudgingPlan
from aopcore.engine.validation import ARM_NAME, is_folder_name, judging_problems
from aopcore.errors import InputError
from aopcore.options import PreflightContext, run_preflight, validation_context
from aopcore.records import Question
from aopcore.registry import Implementation, Registry, ensure_path, load_registry

SECTION_KIND = {
    "trainer": "trainer",
    "reward": "reward",
    "feedback": "feedback",
    "judge": "judge",
    "embedder": "embedder",
}


@dataclass
class Plan:
    file: Path
    config: ExperimentConfig
    registry: Registry
    components: dict[str, tuple[Implementation, BaseModel]] = field(default_factory=dict)
    arms: dict[str, tuple[Implementation, BaseModel]] = field(default_factory=dict)
    data: list[LoadedSource] = field(default_factory=list)  # read and checked by the preflight
    overrides: list[str] = field(
        default_factory=list
    )  # the --set values, so an executor can rebuild the plan on a worker

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def questions(self, key: str) -> list[Question]:
        return next(s.questions for s in self.data if s.key == f"data.{key}")

    def summary(self) -> list[str]:
        """What the preflight loaded: questions per source and per category."""
        return [s.summary() for s in self.data]

    def snapshot(self) -> dict[str, Any]:
        """The resolved config (defaults filled in) stored with the run; holds no secrets, only variable names."""
        # where and how stages run does not change results: either executor resumes the other's run
        data = self.config.model_dump(mode="json", exclude={"experiment": {"output_dir", "executor", "ray_address"}})
        for section, (impl, options) in self.components.items():
            data[section] = {"plugin": impl.name, **options.model_dump(mode="json")}
        data["arms"] = {
            arm: {"curriculum": impl.name, **opts.model_dump(mode="json")} for arm, (impl, opts) in self.arms.items()
        }
        return data

    def build(self, **overrides: Any) -> Experiment:
        exp = self.config.experiment
        data = self.config.data
        built = {section: LazyComponent(impl, opts) for section, (impl, opts) in self.components.items()}
        for component in built.values():  # components that use others (a reward-margin judge) get them when built
            component.bind(built)
        arms = {arm: impl.build(opts) for arm, (impl, opts) in self.arms.items()}
        out = Path(exp.output_dir) if Path(exp.output_dir).is_absolute() else self.base_dir / exp.output_dir
        ev = self.config.evaluation
        kwargs: dict[str, Any] = dict(
            name=exp.name,
            output_dir=out,
            trainer=built["trainer"],
            reward=built["reward"],
            judge=built["judge"],
            feedback=built.get("feedback"),
            embedder=built.get("embedder"),
            arms=arms,
            heldout=self.questions("heldout"),
            test_prompts=self.questions("test_prompts"),
            budget=Budget(exp.iterations, exp.records_per_iteration, exp.passes),
            judging=JudgingPlan([(a, b) for a, b in ev.pairs] if ev.pairs else None, ev.iterations, ev.both_orders),
            categories=data.categories,
            seed=exp.seed,
            keep_checkpoints=exp.keep_checkpoints,
            snapshot=self.snapshot(),
            source=(self.file, tuple(self.overrides)),
        )
        kwargs.update(overrides)
        return Experiment(**kwargs, rebuild=rebuild)


def rebuild(config: str, overrides: list[str], carried: dict[str, Any]) -> Experiment:
    """The experiment again, from its config and ``--set`` overrides, with ``carried`` fields as the driver's (what an
    executor's worker runs: ``Experiment.rebuild``, so executors need not know how configs are read)."""
    return resolve(config, overrides).build(**carried)


class LazyComponent:
    """Stands in for a component and builds it on first use: a finished stage never loads a model.

    ``bind(components)`` (for components that use others) is remembered and applied once built.
    """

    def __init__(self, impl: Implementation, options: BaseModel) -> None:
        self.__dict__.update(_impl=impl, _options=options, _target=None, _bind=None)

    def bind(self, components: dict[str, Any]) -> None:
        self.__dict__["_bind"] = components
        if self.__dict__["_target"] is not None and hasattr(self.__dict__["_target"], "bind"):
            self.__dict__["_target"].bind(components)

    def _build(self) -> Any:
        target = self.__dict__["_target"]
        if target is None:
            target = self.__dict__["_impl"].build(self.__dict__["_options"])
            self.__dict__["_target"] = target
            components = self.__dict__["_bind"]
            if components is not None and hasattr(target, "bind"):
                target.bind(components)
        return target

    def __getstate__(self) -> dict[str, Any]:
        # a copy sent to another process (an executor's worker) builds its own component there: models never travel
        return {**self.__dict__, "_target": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def built(self) -> bool:
        return self.__dict__["_target"] is not None

    def declared(self) -> tuple[type | None, BaseModel]:
        """The component's class and options, read without building it (the class's module is imported).

        Executors and contract checks look for this method on a component's type (``type(c).declared``), so they
        need not import this module."""
        factory = self.__dict__["_impl"].factory
        cls = factory.load() if hasattr(factory, "load") else factory
        return (cls if isinstance(cls, type) else None), self.__dict__["_options"]

    def plugin_name(self) -> str:
        """The registered name of the plugin this stands in for (``ppo``, ``verifier``)."""
        return self.__dict__["_impl"].name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._build(), name)

    def __repr__(self) -> str:
        impl = self.__dict__["_impl"]
        return f"<{impl.kind} {impl.name!r} ({'built' if self.built else 'not built yet'})>"


def _section(
    raw: dict[str, Any], key: str, model: type[BaseModel], *, required: bool = False, partial: bool = False
) -> Any:
    """Validate one core section on its own, so its problems are reported even when another section has some.

    parse_config has reported the section's errors already. With ``partial``, keys with errors are dropped
    (defaults stand in) so that the rest can still be checked: a typo in [data] hides no data problem.
    """
    value = raw.get(key)
    if value is None and not required:
        value = {}
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        if not partial:
            return None
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in bad})
        except ValidationError:
            return None


def resolve(
    file: Path | str, overrides: list[str] | None = None, *, model: type[ExperimentConfig] | None = None
) -> Plan:
    """Validate a config completely; raise ConfigProblems listing every problem at once.

    ``model``: the core structure to expect (default ExperimentConfig; the curriculum session passes SessionConfig).
    """
    file = Path(file)
    config, raw, report = parse_config(file, overrides, model=model)
    exp_raw = raw.get("experiment", {}) if isinstance(raw.get("experiment"), dict) else {}
    for p in exp_raw.get("plugin_paths", []) or []:
        if isinstance(p, str):
            ensure_path(str((file.parent / p).resolve()))
    plugin_modules = [m for m in exp_raw.get("plugins", []) or [] if isinstance(m, str)]
    registry = load_registry(plugin_modules)
    for problem in registry.problems:
        if problem.distribution == "(config)":
            report.add(("experiment", "plugins"), f"plugin {problem.plugin!r} failed to load: {problem.error}")
    context = validation_context(file.parent, set(registry.names("data")))

    plan_components: dict[str, tuple[Implementation, BaseModel]] = {}
    for section in COMPONENT_SECTIONS:
        spec = raw.get(section)
        if not isinstance(spec, dict):
            continue
        name = spec.get("plugin")
        if not isinstance(name, str):
            continue  # the core model already reported it
        checked = _check_component(
            report,
            registry,
            SECTION_KIND[section],
            (section,),
            name,
            {k: v for k, v in spec.items() if k != "plugin"},
            name_key="plugin",
            context=context,
        )
        if checked:
            plan_components[section] = checked

    plan_arms: dict[str, tuple[Implementation, BaseModel]] = {}
    arms_raw = raw.get("arms")
    if isinstance(arms_raw, dict):
        for arm, spec in arms_raw.items():
            if not isinstance(spec, dict):
                report.add(("arms", arm), "an arm must be a table, e.g. [arms.aop]")
                continue
            if not is_folder_name(arm):
                report.add(("arms", arm), ARM_NAME)
            name = spec.get("curriculum", arm)
            if not isinstance(name, str):
                continue
            checked = _check_component(
                report,
                registry,
                "curriculum",
                ("arms", arm),
                name,
                {k: v for k, v in spec.items() if k != "curriculum"},
                name_key="curriculum",
                context=context,
            )
            if checked:
                plan_arms[arm] = checked
        if not arms_raw:
            report.add(("arms",), "at least one arm is needed, e.g. [arms.aop]")

    experiment = _section(raw, "experiment", ExperimentSection, required=True)
    evaluation = _section(raw, "evaluation", EvaluationSection)
    data = _section(raw, "data", DataSection, partial=True)
    loaded: list[LoadedSource] = []
    if data is not None:  # read and check every data source now, before any model loads
        loaded, problems = load_data(registry, data, file.parent)
        for key, message in problems:
            report.add(tuple(key.split(".")), message)

    arm_names = list(arms_raw) if isinstance(arms_raw, dict) else []
    _check_references(report, experiment, evaluation, arm_names)

    heldout = next((s.questions for s in loaded if s.key == "data.heldout"), [])
    categories = data.categories if data is not None and data.categories else sorted({q.category for q in heldout})
    seeds = getattr(experiment, "seeds", None) or [getattr(experiment, "seed", 0)]
    curricula = {arm: impl.name for arm, (impl, _) in plan_arms.items()}
    for path, (_impl, options) in [((s,), c) for s, c in plan_components.items()] + [
        (("arms", a), c) for a, c in plan_arms.items()
    ]:
        ctx = PreflightContext(
            config_file=file,
            base_dir=file.parent,
            section=".".join(path),
            iterations=getattr(experiment, "iterations", 1),
            records_per_iteration=getattr(experiment, "records_per_iteration", 1),
            passes=getattr(experiment, "passes", 1),
            seeds=list(seeds),
            categories=list(categories),
            arms=curricula,
        )
        _run_preflight(report, path, options, ctx)

    for arm, (impl, _) in plan_arms.items():
        needs = set(getattr(impl.factory, "requires", ()))
        for need in sorted(needs):
            if need not in plan_components and not isinstance(raw.get(need), dict):
                report.add(("arms", arm), f"curriculum {impl.name!r} needs a [{need}] section")

    report.raise_if_any()
    assert config is not None
    return Plan(file, config, registry, plan_components, plan_arms, loaded, list(overrides or []))


def _check_references(report: ConfigReport, experiment: Any, evaluation: Any, arms: list[str]) -> None:
    """Cross-references between sections: judged arms exist, judged iterations are run (aopcore.engine.validation's rule)."""
    if evaluation is None:
        return
    runs = experiment.iterations if experiment is not None else None
    for key, problem in judging_problems(evaluation.pairs, evaluation.iterations, arms, runs):
        report.add(tuple(key.split(".")), problem)


def _run_preflight(report: ConfigReport, path: tuple[str, ...], options: BaseModel, ctx: PreflightContext) -> None:
    try:
        problems = run_preflight(options, ctx)
    except InputError as exc:
        problems = exc.problems
    except Exception as exc:  # a plugin's check must not end in a traceback
        problems = [f"preflight check failed: {type(exc).__name__}: {exc}"]
    fields = set(type(options).model_fields)
    for problem in problems:
        head, sep, rest = problem.partition(": ")
        # "field: message" (or "sft.dataset: message") is reported at that key, with its line
        if sep and head.split(".")[0] in fields and " " not in head:
            report.add(path + tuple(head.split(".")), rest)
        else:
            report.add(path, problem)


def _check_component(
    report: ConfigReport,
    registry: Registry,
    kind: str,
    path: tuple[str, ...],
    name: str,
    options: dict[str, Any],
    *,
    name_key: str,
    context: dict[str, Any] | None = None,
) -> tuple[Implementation, BaseModel] | None:
    """Validate one section against its plugin's options model (paths resolved against the config file).

    Without ``context`` (callers outside ``resolve``) the plugin's preflight also runs here.
    """
    if name not in registry.implementations[kind]:
        report.add(path + (name_key,), registry.unknown_message(kind, name))
        return None
    impl = registry.implementations[kind][name]
    standalone = context is None
    if context is None:
        context = validation_context(report.file.parent, set(registry.names("data")))
    try:
        model = impl.options.model_validate(options, context=context)
    except ValidationError as exc:
        report.add_validation_error(path, exc, impl.options)
        return None
    rebase = getattr(model, "with_base_dir", None)
    if callable(rebase):  # older plugins resolve their own relative paths
        model = rebase(report.file.parent)
    for field_name, var in missing_secrets(model):
        report.add(path + (field_name,), f"environment variable {var} is not set (the API key is read from it)")
    if standalone:
        _run_preflight(report, path, model, PreflightContext(report.file, report.file.parent, ".".join(path)))
    return impl, model
