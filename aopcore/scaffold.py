"""``aopcore new-plugin KIND NAME``: write a plugin package that installs, registers and passes its own tests.

The package is the shortest path from an idea to a tested plugin: a pyproject with the
``aopcore`` entry point, an options model, a small implementation that already honours its
protocol, tests written with :mod:`aopcore.testing`, and a README. The templates are in
:mod:`aopcore.scaffold_templates`.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from string import Template

from aopcore.errors import InputError
from aopcore.scaffold_templates import INIT, KINDS, PLUGIN, PYPROJECT, README

NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def names(name: str, kind: str) -> dict[str, str]:
    """The names a package for plugin ``name`` uses: distribution, module, class, options class."""
    if not NAME.match(name):
        raise InputError(f"new-plugin: name {name!r} must be lower-case letters, digits and single hyphens, starting with a letter "
                         "(e.g. weakness-sampler)")
    dist = name if name.startswith("aopcore-") else f"aopcore-{name}"
    camel = "".join(part.capitalize() for part in name.split("-"))
    suffix = KINDS[kind][2]
    cls = camel if camel.endswith(suffix) else camel + suffix
    return {"name": name, "dist": dist, "module": dist.replace("-", "_"), "cls": cls, "options": f"{cls}Options", "kind": kind}


def render(kind: str, name: str) -> dict[str, str]:
    """Relative path -> file text of the package for a ``kind`` plugin called ``name``."""
    if kind not in KINDS:
        raise InputError(f"new-plugin: unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    hook, impl, _, options_t, impl_t, test_t, summary, usage = KINDS[kind]
    values = {**names(name, kind), "hook": hook, "impl": impl, "summary": summary}
    requires = "" if kind != "curriculum" else ", requires=()"
    values["requires_arg"] = requires
    values["usage"] = Template(usage).substitute(values)
    module = values["module"]
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": INIT,
        f"{module}/plugin.py": PLUGIN,
        f"{module}/options.py": options_t,
        f"{module}/{impl}.py": impl_t,
        f"tests/test_{impl}.py": test_t,
    }
    return {path: Template(text).substitute(values) for path, text in files.items()}


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
    p = sub.add_parser("new-plugin", help="write a plugin package (entry point, options, implementation, tests, README)")
    p.add_argument("kind", choices=list(KINDS), help="the component the plugin provides")
    p.add_argument("name", help="the plugin's name in configs, e.g. weakness-sampler")
    p.add_argument("--dir", type=Path, default=None, help="where to write the package (default: ./aopcore-NAME)")
    p.set_defaults(func=_cmd_new_plugin)


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    target = write_package(args.kind, args.name, args.dir)
    n = names(args.name, args.kind)
    print(f"wrote {target}/ ({args.kind} {args.name!r}: {n['module']}.{KINDS[args.kind][1]}.{n['cls']})")
    print(f"next: pip install -e {target} && aopcore plugins --details {args.name} && python -m pytest {target}")
    return 0
