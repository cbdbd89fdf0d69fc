"""Kept for compatibility (``aopcore.data.FieldMap``, ``aopcore.data.RowMapper``, as earlier docs published them):
rows to questions are :mod:`aopcore.data.rows`, the ``builtin:`` source :mod:`aopcore.data.builtin`. This folder holds
the built-in question sets. The hook is not re-exported: an install whose entry point still names ``aopcore.data``
registers nothing twice."""

from __future__ import annotations

from aopcore.data.builtin import BUILTIN_DIR, builtin_names, load_builtin  # noqa: F401
from aopcore.data.rows import (  # noqa: F401
    FieldMap,
    RowMapper,
    default_prefix,
    hh_prompt,
    hh_subset,
    json_problem,
    jsonl_rows,
    open_bytes,
    questions_from_jsonl,
)
