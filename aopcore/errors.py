"""Errors that map to the CLI's exit statuses (2: bad input, 1: runtime failure).

Which to raise is decided by who can fix it: the user, by editing the config or the data
(:class:`InputError`), or nobody before the run is retried (:class:`RuntimeFailure`).
The CLI prints either as ``error: ...`` lines without a traceback; finished stages are kept,
so the user fixes the cause and reruns the same command.
"""

from __future__ import annotations


class AopcoreError(Exception):
    """Base class for errors aopcore reports without a traceback (exit status ``exit_status``)."""

    exit_status = 1


class InputError(AopcoreError):
    """Bad input the user fixes in the config or the data. Exit status 2.

    Raise it for: a missing or malformed data file, an option value that cannot work with
    this experiment (a pool smaller than ``records_per_iteration``, a curriculum that cannot
    meet its budget because of the config), a missing credential. Each problem is one line
    naming the file and line or the config key (``arms.NAME.pool: ...``); pass several to
    report them all at once: ``InputError("a.jsonl:3: ...", "arms.x.k: ...")``.
    """

    exit_status = 2

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problems))


class RuntimeFailure(AopcoreError):
    """Something failed while running that the config does not explain. Exit status 1.

    Raise it for: a remote service that keeps failing, a model that cannot be loaded, state
    a curriculum wrote earlier that is missing from its ``workdir``. Rerunning the same
    command resumes after the last finished stage.
    """
