"""Errors that map to the CLI's exit statuses (2: bad input, 1: runtime failure)."""
from __future__ import annotations


class AopcoreError(Exception):
    """Base class for errors aopcore reports without a traceback."""

    exit_status = 1


class InputError(AopcoreError):
    """Bad input from the user: config, data files, credentials. Exit status 2."""

    exit_status = 2

    def __init__(self, *problems: str) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problems))


class RuntimeFailure(AopcoreError):
    """Something failed while running (a remote service, a model). Exit status 1."""
