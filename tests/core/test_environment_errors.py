"""A full disk, a missing permission or too few file handles reach the user as one line, also where a library written
in Rust (safetensors) reports them as its own exception and only the text says which OS error it was."""

from __future__ import annotations

import errno

import pytest

import aopcore.cli as cli
from aopcore.oserrors import environment_error


class SafetensorLikeError(Exception):
    """What safetensors raises: not an OSError, the OS error only in the text (Rust's std::io::Error)."""


RUST_FULL_DISK = "Error while serializing: I/O error: No space left on device (os error 28)"


def test_a_rust_io_error_in_the_text_becomes_the_os_error_naming_the_path():
    found = environment_error(SafetensorLikeError(RUST_FULL_DISK), "/runs/x/policy")
    assert isinstance(found, OSError)
    assert found.errno == errno.ENOSPC and found.filename == "/runs/x/policy"


def test_the_cause_chain_is_followed_but_not_an_error_met_while_handling_another():
    disk = OSError(errno.EACCES, "Permission denied", "/runs/x")
    try:
        raise RuntimeError("saving failed") from disk
    except RuntimeError as exc:
        assert environment_error(exc) is disk
    try:
        try:
            raise disk
        except OSError:
            raise KeyError("a bug in the handler")  # noqa: B904 - the point: an implicit context, not a cause
    except KeyError as exc:
        assert environment_error(exc) is None  # the bug keeps its traceback


@pytest.mark.parametrize(
    "text",
    ["Error while serializing: I/O error: Is a directory (os error 21)", "shape mismatch (os error 28 is not this)"],
)
def test_other_errors_are_not_the_machines(text: str):
    assert environment_error(SafetensorLikeError(text)) is None
    assert environment_error(ValueError("bad value")) is None


def test_the_cli_prints_one_line_for_a_rust_libraries_full_disk(monkeypatch, capsys):
    def failing(_args):
        raise SafetensorLikeError(RUST_FULL_DISK)

    monkeypatch.setattr(cli, "_cmd_validate", failing)
    assert cli.main(["validate", "any.toml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: no space left on the device; free space there or move output_dir to a larger disk, "
        "then rerun the same command (finished stages are kept)"
    ]


def test_the_cli_keeps_the_traceback_of_anything_else(monkeypatch):
    def failing(_args):
        raise SafetensorLikeError("Error while deserializing header: InvalidHeaderDeserialization")

    monkeypatch.setattr(cli, "_cmd_validate", failing)
    with pytest.raises(SafetensorLikeError):
        cli.main(["validate", "any.toml"])
