"""The example configurations and scripts that ship inside the package: list them, write one out, run one by name.

A wheel carries every ``examples/*.toml`` and ``examples/*.py`` of the repository as ``aopcore/_examples/``
(setup.py copies them at build time, so a new example needs no packaging edit); an editable install reads
the checkout's ``examples/`` itself. Either way the repository's ``examples/`` is the one source.

Written out, a config must work where it lands: the repository's configs say ``output_dir = "../runs"``
(relative to the file: ``runs/`` at the top of the checkout), which becomes ``output_dir = "runs"`` next to
the written file, and command lines in comments lose their checkout paths (``.venv/bin/aopcore run
examples/quickstart.toml`` -> ``aopcore run quickstart.toml``). No example config names any other relative
path (tests/e2e/test_pip_user.py checks it), so nothing else needs to travel with it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aopcore.errors import InputError, RuntimeFailure

PACKAGED = "_examples"  # folder inside the installed package (see setup.py)
SUFFIXES = (".toml", ".py")


@dataclass(frozen=True)
class Example:
    """One shipped example: ``name`` is the file name without suffix (``quickstart``)."""

    name: str
    file: Path

    @property
    def is_config(self) -> bool:
        return self.file.suffix == ".toml"

    @property
    def filename(self) -> str:
        return self.file.name

    def summary(self, width: int = 110) -> str:
        """The first sentence of the example's opening comment (a config) or docstring (a script): what it is for."""
        words: list[str] = []
        for line in self.file.read_text(encoding="utf-8").splitlines():
            text = line.strip().lstrip("#").strip().strip('"').strip()
            if not text:
                if words:
                    break
                continue
            words.append(text)
            if re.search(r"[.:]$|[.:] ", text):
                break
        sentence = re.split(r"(?<=[.:])\s", " ".join(words), maxsplit=1)[0].rstrip(".:")
        return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def examples_dir() -> Path:
    """Where the examples are: the wheel's ``aopcore/_examples``, else the checkout's ``examples/`` (editable install)."""
    here = Path(__file__).resolve().parent.parent  # the aopcore package (this module is in devtools/)
    packaged = here / PACKAGED
    if packaged.is_dir():
        return packaged
    checkout = here.parent / "examples"
    if checkout.is_dir() and (here.parent / "pyproject.toml").is_file():
        return checkout
    raise RuntimeFailure(f"this aopcore install ({here}) carries no examples: reinstall it from a wheel or sdist")


def list_examples() -> list[Example]:
    """Every shipped example, configs first, by name."""
    files = [p for p in examples_dir().iterdir() if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")]
    return sorted((Example(p.stem, p) for p in files), key=lambda e: (not e.is_config, e.name))


def find_example(name: str) -> Example:
    """The example called ``name`` (``quickstart`` or ``quickstart.toml``); an InputError naming the choices otherwise."""
    examples = list_examples()
    for example in examples:
        if name in (example.name, example.filename):
            return example
    names = [e.name for e in examples]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"no example named {name!r}{hint} (examples: {', '.join(names)})")


_OUTPUT_DIR = re.compile(r"""^(\s*output_dir\s*=\s*)(["'])\.\./""", re.MULTILINE)
_CHECKOUT_CLI = re.compile(r"(?:\.venv/bin/)?aopcore (run|validate) examples/([\w.-]+\.toml)")


def portable_text(example: Example) -> str:
    """The example's text as written outside the checkout (see the module docstring)."""
    text = example.file.read_text(encoding="utf-8")
    if not example.is_config:
        return text
    lines = []
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("#"):  # usage lines in comments: the pip user's command
            line = _CHECKOUT_CLI.sub(r"aopcore \1 \2", line)
        lines.append(line)
    out = _OUTPUT_DIR.sub(r"\1\2", "".join(lines), count=1)
    before, after = tomllib.loads(text), tomllib.loads(out)
    old = before.get("experiment", {}).get("output_dir")
    if isinstance(old, str) and old.startswith("../"):
        before["experiment"]["output_dir"] = old[3:]
    if before != after:  # the rewrite may only move output_dir; anything else would be a bug here
        raise RuntimeFailure(f"example {example.filename}: rewriting its paths changed other values")
    return out


def write_example(name: str, folder: Path, *, force: bool = False) -> tuple[Path, bool]:
    """Write example ``name`` into ``folder`` (created); returns the file and whether it was (re)written.

    An existing file with other content is kept unless ``force``: it may hold the user's edits.
    """
    example = find_example(name)
    text = portable_text(example)
    target = Path(folder) / example.filename
    if target.exists():
        if target.is_dir():
            raise InputError(f"{target}: is a folder; choose another destination")
        if target.read_text(encoding="utf-8", errors="replace") == text:
            return target, False
        if not force:
            raise InputError(
                f"{target}: exists and differs from the packaged example {example.filename} "
                "(your edits?); remove it, write elsewhere, or pass --force to overwrite"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target, True


def config_argument(arg: Path) -> tuple[Path, str | None]:
    """``aopcore run/validate ARG``: the config file to use, and a note to print when ARG named a packaged example.

    A path that exists is used as it is. A bare name that is no file but a packaged config (``aopcore run
    quickstart``) means ``./NAME.toml``: written from the package when missing, used as it stands when present
    (it may hold the user's edits), so a rerun of the same command resumes the same run.
    """
    if arg.exists() or len(arg.parts) != 1 or arg.suffix:
        return arg, None
    try:
        example = find_example(arg.name)
    except (InputError, RuntimeFailure):
        return arg, None  # not an example either: the usual "cannot read config" error names the path
    if not example.is_config:
        return arg, None
    target = Path(example.filename)
    if target.exists():
        return (
            target,
            f"{arg}: no such file; using ./{target} (the packaged example {example.name}, or your edit of it)",
        )
    target, _ = write_example(example.name, Path("."))
    return target, f"{arg}: no such file; wrote the packaged example to ./{target} (edit it and rerun)"


def add_parser(sub) -> None:
    """``aopcore examples [list|show NAME|write NAME [DIR]]``."""
    p = sub.add_parser(
        "examples",
        help="list the example configs and scripts that ship with aopcore, show or write one",
        description="Without an action: list them. `aopcore run NAME` runs a packaged config by name "
        "(writing ./NAME.toml first when it is missing).",
    )
    actions = p.add_subparsers(dest="action")
    actions.add_parser("list", help="list the examples (the default)")
    show = actions.add_parser("show", help="print one example as it would be written")
    show.add_argument("name")
    write = actions.add_parser("write", help="write one example into a folder, its paths made relative to it")
    write.add_argument("name")
    write.add_argument("dir", nargs="?", type=Path, default=Path("."), help="destination folder (default: .)")
    write.add_argument("--force", action="store_true", help="overwrite a file of that name that differs")
    p.set_defaults(func=_cmd_examples)


def _cmd_examples(args) -> int:
    if args.action == "show":
        print(portable_text(find_example(args.name)), end="")
        return 0
    if args.action == "write":
        target, written = write_example(args.name, args.dir, force=args.force)
        print(f"{'wrote' if written else 'unchanged'} {target}")
        if target.suffix == ".toml":
            print(f"  next: aopcore validate {target} && aopcore run {target}")
        return 0
    examples = list_examples()
    width = max(len(e.filename) for e in examples) if examples else 0
    for e in examples:
        print(f"  {e.filename:<{width}}  {'config' if e.is_config else 'script'}  {e.summary()}")
    print("aopcore examples write NAME [DIR]   writes one (e.g. aopcore examples write quickstart .)")
    print("aopcore run NAME                    runs a config by name (writes ./NAME.toml first when missing)")
    return 0
