"""The instructions sent to the feedback LLM (paper sections 4.3 and 4.4), and the data behind them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from aopcore import EvalRecord

DATA = Path(__file__).parent / "data"
log = logging.getLogger("aopcore")


@cache
def category_info() -> dict[str, dict]:
    return json.loads((DATA / "categories.json").read_text())


_weak_keywords_warned: set[str] = set()


def keywords(category: str, given: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Keywords of ``category``: the ``keywords`` option's, the packaged SHP ones, or (warned once) its own name."""
    if given and given.get(category):
        return list(given[category])
    known = category_info().get(category, {}).get("keywords")
    if known:
        return list(known)
    if category not in _weak_keywords_warned:
        _weak_keywords_warned.add(category)
        log.warning(
            "category %r has no keywords (the packaged ones cover the 18 SHP categories); its name is its only "
            "keyword, so its questions will be narrow: give some with the curriculum's `keywords` option",
            category,
        )
    return [category]


SHP_VENUE = "the Reddit forum r/{category}"  # the paper's wording, for the SHP categories it was written for
OTHER_VENUE = 'an online forum about "{category}"'


def venue(category: str, wording: str | None = None) -> str:
    """Where the feedback LLM is told questions of ``category`` are asked.

    ``wording`` (an option, with ``{category}``) wins; otherwise the paper's "the Reddit forum
    r/<category>" for the 18 SHP categories and a neutral forum for any other category.
    """
    template = wording or (SHP_VENUE if category in category_info() else OTHER_VENUE)
    return template.format(category=category)


def convention(category: str) -> str:
    return category_info().get(category, {}).get("convention", "")


VANILLA = """You write questions that real people post on {venue}.
Write {n} different questions about "{keyword}".
- Make them informal, like real {posts}: use "I", "my", and short personal anecdotes.
- Make each question different from the others; do not repeat ideas.
- Vary the length: some one short sentence, some a few sentences of context and then the question.
- Ask for answers, opinions, or other people's experiences.
{convention}Return only the questions as a numbered list, one per line."""


# Short instructions that a ~100M-parameter model still follows.
VANILLA_COMPACT = 'Write {n} different questions that people ask on {venue} about "{keyword}". Use "I" and "my". {convention}Return only a numbered list.'


def vanilla_prompt(category: str, keyword: str, n: int, style: str = "paper", wording: str | None = None) -> str:
    conv = convention(category)
    place = venue(category, wording)
    if style == "compact":
        return VANILLA_COMPACT.format(venue=place, keyword=keyword, n=n, convention=f"{conv} " if conv else "")
    posts = "Reddit posts" if "reddit" in place.lower() else "forum posts"
    return VANILLA.format(venue=place, posts=posts, keyword=keyword, n=n, convention=f"- {conv}\n" if conv else "")


# The paper's prompt (section 4.4), followed by the data and the output format we parse.
SCORE_BASED = """You are a writing expert. You are given a set of questions and answers, along with the domain of the question, and the helpfulness score for the answer with respect to the question. A higher score means that the answer is helpful with respect to the question. First, identify the domains in which the answers have received a poor score. Among these questions check for common patterns. For example, these questions could be fact-related, might use proper nouns, etc. Next, check for similar patterns in domains with a high score. Come up with a set of {n} questions, primarily focused on domains that have received a low score. Use common patterns from the high-performing questions while framing these questions, so that the generated questions would receive a high score despite being from the low-scoring domains. Make the questions informal, like the ones seen on Reddit, and provide a mixture of long and short length questions.

{samples}

Mean score per domain in this sample (lowest first):
{summary}

Write exactly {n} new questions. Put each on its own line as: domain | question
Valid domains: {domains}"""

# For feedback models too small to pick domains themselves: we name the target domain.
SCORE_BASED_TARGETED = """You are a writing expert. Below are questions with the answers a model gave and a helpfulness score (higher is better).

{samples}

The model does worst in the domain "{target}". Look at what the high-scoring questions have in common (length, wording, asking for experiences or practical steps) and write {n} new informal questions for {venue} that share those properties. {convention}Mix short and long questions.
Return only the questions as a numbered list, one per line."""


SCORE_BASED_COMPACT = """Here are questions people asked, with how helpful the answers were (higher is better):
{examples}

Write {n} new questions for {venue}, written like the high-scoring ones. {convention}Return only a numbered list of questions."""


# appended to a score-based prompt when the curriculum asks the writer for reference answers (answers = "writer")
ANSWER_REQUEST = (
    "After each question, on the same line, write its short reference answer (the exact answer a grader "
    "would accept) as: Answer: <answer>"
)


def with_answer_request(prompt: str) -> str:
    return f"{prompt}\n{ANSWER_REQUEST}"


def compact_examples(records: Sequence[EvalRecord], target: str, k: int = 4) -> str:
    """The best-scoring questions of the draw and the worst of the target domain: short enough for small models."""
    best = sorted(records, key=lambda r: -r.reward)[:k]
    worst = sorted((r for r in records if r.category == target), key=lambda r: r.reward)[:2]
    shown = best + [r for r in worst if r not in best]
    return "\n".join(f'- "{r.question}" score {r.reward:.2f}' for r in shown)


def format_samples(records: Sequence[EvalRecord], max_answer_chars: int) -> str:
    blocks = []
    for r in records:
        answer = r.answer if len(r.answer) <= max_answer_chars else r.answer[:max_answer_chars] + " ..."
        blocks.append(f"Domain: {r.category}\nQuestion: {r.question}\nAnswer: {answer}\nScore: {r.reward:.3f}")
    return "\n\n".join(blocks)


def domain_summary(records: Sequence[EvalRecord]) -> list[tuple[str, float]]:
    by: dict[str, list[float]] = {}
    for r in records:
        by.setdefault(r.category, []).append(r.reward)
    return sorted(((c, sum(v) / len(v)) for c, v in by.items()), key=lambda cv: (cv[1], cv[0]))
