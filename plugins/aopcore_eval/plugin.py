"""Registers the evaluation family's judges, commands and HTML report."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore_eval.judges import FeedbackLLMJudge, RewardMarginJudge


@hookimpl
def register_judges(register):
    register("reward-margin", RewardMarginJudge)
    register("feedback-llm", FeedbackLLMJudge)


@hookimpl
def register_commands(subparsers):
    from aopcore_eval.commands import add_commands

    add_commands(subparsers)


def _html_report(run_dir):
    """The HTML report with plots; skipped (no file) where matplotlib is not installed."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return []
    from aopcore_eval.html_report import write_html_report

    return write_html_report(run_dir)


@hookimpl
def register_report_writers(register):
    register("html", _html_report)


def _aggregate_html(root):
    """The multi-seed aggregate page with plots; skipped (no file) where matplotlib is not installed."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return []
    from aopcore_eval.aggregate_html import write_aggregate_html

    return write_aggregate_html(root)


@hookimpl
def register_aggregate_writers(register):
    register("html", _aggregate_html)
