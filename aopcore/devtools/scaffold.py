"""``aopcore new-plugin KIND NAME``: write a plugin package that installs, registers and passes its own tests.

The package is the shortest path from an idea to a tested plugin: a pyproject with the
``aopcore`` entry point, an options model, a small implementation that already honours its
protocol, tests written with :mod:`aopcore.testing`, and a README.

The templates are real files shipped as package data, ``aopcore/devtools/scaffold_templates/`` (``package/`` for the files
every plugin has, one folder per kind for its options, implementation and test), read with
:mod:`importlib.resources`; the ``.tmpl`` suffix keeps pytest and linters from taking them for code. Their
``string.Template`` placeholders (``$name``, ``$dist``, ``$module``, ``$cls``, ``$options``, ``$hook``, ``$kind``,
``$impl``, ``$summary``, ``$usage``, ``$requires_arg``) are filled here; ``$$`` is a literal dollar. Each
implementation is small but real (it passes its kind's contract check untouched), so the author starts from green
tests and changes behaviour one step at a time.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import NamedTuple

from aopcore.errors import InputError


class Kind(NamedTuple):
    """What a plugin of one component kind is called and registered as; its templates are in ``scaffold_templates/<kind>/``."""

    hook: str  # the hook its plugin.py implements
    impl: str  # the implementation's module (and its test's) name: <module>/<impl>.py, tests/test_<impl>.py
    suffix: str  # the class name's suffix (FocusCurriculum)
    summary: str  # one line for the README
    usage: str  # the config lines the README shows (a template itself)


KINDS = {
    "curriculum": Kind(
        "register_curricula",
        "curriculum",
        "Curriculum",
        "A prompt curriculum that puts each iteration's prompts on the categories where the policy does worst",
        '[arms.$name]\ncurriculum = "$name"\ntemperature = 0.3     # options are validated against $options',
    ),
    "reward": Kind(
        "register_reward_models",
        "reward",
        "Reward",
        "A reward model that scores answers of a useful length that address the question",
        '[reward]\nplugin = "$name"\ntarget_words = 60',
    ),
    "judge": Kind(
        "register_judges",
        "judge",
        "Judge",
        "A pairwise judge that prefers the more detailed answer",
        '[judge]\nplugin = "$name"\ntie_margin = 0.1',
    ),
    "feedback": Kind(
        "register_feedback_llms",
        "feedback",
        "Feedback",
        "A feedback LLM (offline stub) that writes numbered questions",
        '[feedback]\nplugin = "$name"\nquestions = 5',
    ),
    "trainer": Kind(
        "register_trainers",
        "trainer",
        "Trainer",
        "A policy trainer whose policy is a learned preference over answer styles",
        '[trainer]\nplugin = "$name"\nlearning_rate = 0.5',
    ),
    "embedder": Kind(
        "register_embedders",
        "embedder",
        "Embedder",
        "An embedder that hashes words into a normalised vector",
        '[embedder]\nplugin = "$name"\ndim = 256',
    ),
}


def template(rel: str) -> str:
    """The text of ``scaffold_templates/<rel>.tmpl`` (package data)."""
    return (resources.files("aopcore.devtools") / "scaffold_templates" / f"{rel}.tmpl").read_text(encoding="utf-8")


NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def names(name: str, kind: str) -> dict[str, str]:
    """The names a package for plugin ``name`` uses: distribution, module, class, options class."""
    if not NAME.match(name):
        raise InputError(
            f"new-plugin: name {name!r} must be lower-case letters, digits and single hyphens, starting with a letter "
            "(e.g. weakness-sampler)"
        )
    dist = name if name.startswith("aopcore-") else f"aopcore-{name}"
    camel = "".join(part.capitalize() for part in name.split("-"))
    suffix = KINDS[kind].suffix
    cls = camel if camel.endswith(suffix) else camel + suffix
    return {
        "name": name,
        "dist": dist,
        "module": dist.replace("-", "_"),
        "cls": cls,
        "options": f"{cls}Options",
        "kind": kind,
    }


def render(kind: str, name: str) -> dict[str, str]:
    """Relative path -> file text of the package for a ``kind`` plugin called ``name``."""
    if kind not in KINDS:
        raise InputError(f"new-plugin: unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    spec = KINDS[kind]
    impl = spec.impl
    values = {**names(name, kind), "hook": spec.hook, "impl": impl, "summary": spec.summary}
    requires = "" if kind != "curriculum" else ", requires=()"
    values["requires_arg"] = requires
    values["usage"] = Template(spec.usage).substitute(values)
    module = values["module"]
    files = {  # written path -> template
        "pyproject.toml": "package/pyproject.toml",
        "README.md": "package/README.md",
        f"{module}/__init__.py": "package/__init__.py",
        f"{module}/plugin.py": "package/plugin.py",
        f"{module}/options.py": f"{kind}/options.py",
        f"{module}/{impl}.py": f"{kind}/{impl}.py",
        f"tests/test_{impl}.py": f"{kind}/test_{impl}.py",
    }
    return {path: Template(template(rel)).substitute(values) for path, rel in files.items()}


def write_package(kind: str, name: str, folder: Path | None = None) -> Path:
    """Write the package into ``folder`` (default ``./aopcore-NAME``), which must not exist or be empty."""
    files = render(kind, name)
    target = Path(folder) if folder is not None else Path(names(name, kind)["dist"])
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"new-plugin: {target} already exists and is not empty; choose another --dir")
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``aopcore new-plugin`` on the CLI's subparsers."""
    p = sub.add_parser(
        "new-plugin", help="write a plugin package (entry point, options, implementation, tests, README)"
    )
    p.add_argument("kind", choices=list(KINDS), help="the component the plugin provides")
    p.add_argument("name", help="the plugin's name in configs, e.g. weakness-sampler")
    p.add_argument("--dir", type=Path, default=None, help="where to write the package (default: ./aopcore-NAME)")
    p.set_defaults(func=_cmd_new_plugin)


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    target = write_package(args.kind, args.name, args.dir)
    n = names(args.name, args.kind)
    print(f"wrote {target}/ ({args.kind} {args.name!r}: {n['module']}.{KINDS[args.kind].impl}.{n['cls']})")
    print(f"next: pip install -e {target} && aopcore plugins --details {args.name} && python -m pytest {target}")
    return 0
