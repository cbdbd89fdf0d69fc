"""From a config file to a ready :class:`Experiment`, with every problem reported up front.

``resolve`` is the preflight shared by ``aopcore validate`` and ``aopcore run``:
it loads plugins, validates each section against its plugin's options model,
checks data files and API-key variables, and builds nothing expensive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aopcore.config import (
    COMPONENT_SECTIONS,
    ConfigReport,
    ExperimentConfig,
    missing_secrets,
    parse_config,
)
from aopcore.data import load_source, source_problem
from aopcore.errors import InputError
from aopcore.experiment import Budget, Experiment, JudgingPlan
from aopcore.registry import Implementation, Registry, ensure_path, load_registry

SECTION_KIND = {"trainer": "trainer", "reward": "reward", "feedback": "feedback", "judge": "judge", "embedder": "embedder"}


@dataclass
class Plan:
    file: Path
    config: ExperimentConfig
    registry: Registry
    components: dict[str, tuple[Implementation, BaseModel]] = field(default_factory=dict)
    arms: dict[str, tuple[Implementation, BaseModel]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def snapshot(self) -> dict[str, Any]:
        """The resolved config (defaults filled in) stored with the run; holds no secrets, only variable names."""
        data = self.config.model_dump(mode="json", exclude={"experiment": {"output_dir"}})
        for section, (impl, options) in self.components.items():
            data[section] = {"plugin": impl.name, **options.model_dump(mode="json")}
        data["arms"] = {arm: {"curriculum": impl.name, **opts.model_dump(mode="json")} for arm, (impl, opts) in self.arms.items()}
        return data

    def build(self, **overrides: Any) -> Experiment:
        exp = self.config.experiment
        data = self.config.data
        built = {section: impl.build(opts) for section, (impl, opts) in self.components.items()}
        for component in built.values():  # components that use others (a reward-margin judge) get them here
            if hasattr(component, "bind"):
                component.bind(built)
        arms = {arm: impl.build(opts) for arm, (impl, opts) in self.arms.items()}
        heldout = load_source(data.heldout, self.base_dir, per_category=data.heldout_per_category)
        if data.categories:
            missing = sorted(set(data.categories) - {q.category for q in heldout})
            if missing:
                raise InputError(f"{self.file}: data.categories: no held-out questions for {', '.join(missing)}")
            heldout = [q for q in heldout if q.category in set(data.categories)]
        tests = load_source(data.test_prompts, self.base_dir, limit=data.test_size)
        out = Path(exp.output_dir) if Path(exp.output_dir).is_absolute() else self.base_dir / exp.output_dir
        ev = self.config.evaluation
        kwargs: dict[str, Any] = dict(
            name=exp.name, output_dir=out, trainer=built["trainer"], reward=built["reward"], judge=built["judge"],
            feedback=built.get("feedback"), embedder=built.get("embedder"), arms=arms, heldout=heldout, test_prompts=tests,
            budget=Budget(exp.iterations, exp.records_per_iteration, exp.passes),
            judging=JudgingPlan([tuple(p) for p in ev.pairs] if ev.pairs else None, ev.iterations, ev.both_orders),
            categories=data.categories, seed=exp.seed, keep_checkpoints=exp.keep_checkpoints, snapshot=self.snapshot(),
        )
        kwargs.update(overrides)
        return Experiment(**kwargs)


def resolve(file: Path | str, overrides: list[str] | None = None) -> Plan:
    """Validate a config completely; raise ConfigProblems listing every problem at once."""
    file = Path(file)
    config, raw, report = parse_config(file, overrides)
    exp_raw = raw.get("experiment", {}) if isinstance(raw.get("experiment"), dict) else {}
    for p in exp_raw.get("plugin_paths", []) or []:
        if isinstance(p, str):
            ensure_path(str((file.parent / p).resolve()))
    plugin_modules = [m for m in exp_raw.get("plugins", []) or [] if isinstance(m, str)]
    registry = load_registry(plugin_modules)
    for problem in registry.problems:
        if problem.distribution == "(config)":
            report.add(("experiment", "plugins"), f"plugin {problem.plugin!r} failed to load: {problem.error}")

    plan_components: dict[str, tuple[Implementation, BaseModel]] = {}
    for section in COMPONENT_SECTIONS:
        spec = raw.get(section)
        if not isinstance(spec, dict):
            continue
        name = spec.get("plugin")
        if not isinstance(name, str):
            continue  # the core model already reported it
        checked = _check_component(report, registry, SECTION_KIND[section], (section,), name, {k: v for k, v in spec.items() if k != "plugin"}, name_key="plugin")
        if checked:
            plan_components[section] = checked

    plan_arms: dict[str, tuple[Implementation, BaseModel]] = {}
    arms_raw = raw.get("arms")
    if isinstance(arms_raw, dict):
        for arm, spec in arms_raw.items():
            if not isinstance(spec, dict):
                report.add(("arms", arm), "an arm must be a table, e.g. [arms.aop]")
                continue
            name = spec.get("curriculum", arm)
            if not isinstance(name, str):
                continue
            checked = _check_component(report, registry, "curriculum", ("arms", arm), name, {k: v for k, v in spec.items() if k != "curriculum"}, name_key="curriculum")
            if checked:
                plan_arms[arm] = checked
        if not arms_raw:
            report.add(("arms",), "at least one arm is needed, e.g. [arms.aop]")

    data_raw = raw.get("data", {}) if isinstance(raw.get("data"), dict) else {}
    for key, default in (("heldout", "builtin:heldout"), ("test_prompts", "builtin:test-prompts")):
        spec = data_raw.get(key, default)
        if isinstance(spec, str) and (problem := source_problem(spec, file.parent)):
            report.add(("data", key), problem)

    for arm, (impl, _) in plan_arms.items():
        needs = set(getattr(impl.factory, "requires", ()))
        for need in sorted(needs):
            if need not in plan_components and not isinstance(raw.get(need), dict):
                report.add(("arms", arm), f"curriculum {impl.name!r} needs a [{need}] section")

    report.raise_if_any()
    assert config is not None
    return Plan(file, config, registry, plan_components, plan_arms)


def _check_component(report: ConfigReport, registry: Registry, kind: str, path: tuple[str, ...], name: str,
                     options: dict[str, Any], *, name_key: str) -> tuple[Implementation, BaseModel] | None:
    if name not in registry.implementations[kind]:
        report.add(path + (name_key,), registry.unknown_message(kind, name))
        return None
    impl = registry.implementations[kind][name]
    try:
        model = impl.options.model_validate(options)
    except ValidationError as exc:
        report.add_validation_error(path, exc, impl.options)
        return None
    rebase = getattr(model, "with_base_dir", None)
    if callable(rebase):  # relative paths in plugin options are relative to the config file
        model = rebase(report.file.parent)
    for field_name, var in missing_secrets(model):
        report.add(path + (field_name,), f"environment variable {var} is not set (the API key is read from it)")
    preflight = getattr(model, "preflight", None)
    if callable(preflight):
        for problem in preflight(report.file.parent) or []:
            report.add(path, problem)
    return impl, model
