"""Label every candidate line of data/prompt_filter_raw.jsonl: keep or reject, with the reason.

Labels come from the rules below, then from OVERRIDES, written after reading every labelled line (the
rules are a first pass, not the ground truth). The rules are deliberately not the filter's code: they may
look at things the filter does not (the whole response, where it stopped), and every line was read.

What a line must be to be kept: one complete question or request a user could post (any topic, banal or odd
is fine: the filter judges form, not quality), possibly wrapped in list markers, quotes, bold, a label or a
trailing score that a parser can strip; "CMV: <opinion>." is a complete post for r/changemyview.
Rejected: truncated lines, markers or labels with no question, assistant-style offers and meta talk about
the task, statements that ask nothing, and questions followed by their own answer.

    .venv/bin/python benchmarks/prompt_filter_label.py   # writes data/prompt_filter_sample.jsonl
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).parent / "data"

MARK = re.compile(r"^\s*(?:\d{1,3}[.)\]:-]|[-*•·]|\(\d{1,3}\)|\[\d{1,3}\]|q\d{1,3}[.:)])\s*", re.I)
ASSISTANT = re.compile(
    r"\b(i'?m (ready|here|glad|happy|not sure i'?m)|i'?d (love|like|be happy)|i'?ll\b|as a friendly ai|a helpful ai|smollm|"
    r"how can i (help|assist)|what can i (help|assist)|what'?s your (first )?question|question you'?d like|let me know|"
    r"looking forward|that'?s all i have|ladies and gentlemen|please (use|provide|answer|go ahead)|you can ask me|"
    r"here(?: are| is|'s) |your questions? (were|:)|which of these questions|these are some of the questions|you could edit)",
    re.I,
)
INTERROGATIVE = re.compile(
    r"^(?:(?:what|why|how|when|where|who|whom|which|whose|is|are|was|were|do|does|did|can|could|should|would|"
    r"will|have|has|may|might|shall|am|any)\b|eli5:|cmv:)",
    re.I,
)
DANGLING = re.compile(
    r"\b(a|an|the|to|of|and|or|my|your|in|on|for|with|about|is|are|what|how|that|when|i|be|if)$", re.I
)


def candidates(raw: str) -> list[str]:
    """The units the parser judges: non-empty lines, or the sentences of a one-paragraph answer (as at 93e6333)."""
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if len(lines) == 1 and raw.count("?") > 1:
        lines = [s.strip() + "?" for s in raw.split("?") if s.strip()]
    return lines


def rule_label(line: str, last: bool) -> tuple[str, str]:
    body = MARK.sub("", line, count=1).strip().strip("*").strip().strip('"').strip()
    if not body or re.fullmatch(r"[\W\d]*(question\s*\d*)?[\W\d]*", body, re.I):
        return "reject", "list marker or label, no question"
    if ASSISTANT.search(line):
        return "reject", "assistant-style offer or meta talk"
    if last and not re.search(r"[?.!)\"']$", body):
        return "reject", "truncated"
    if DANGLING.search(body):
        return "reject", "truncated"
    if "?" not in body and not INTERROGATIVE.match(body):
        return "reject", "not a question"
    return "keep", "complete question"


# (response, line) -> (label, reason), after reading each line; see the reasons for why the rule was wrong
ASSISTANT_TALK = ("reject", "assistant-style offer or meta talk")
MARKER_ONLY = ("reject", "list marker or label, no question")
NOT_A_QUESTION = ("reject", "not a question")
OVERRIDES: dict[tuple[int, int], tuple[str, str]] = {
    (20, 2): ASSISTANT_TALK,  # "You can't answer with the given questions, but you can ..." (also cut off)
    (24, 1): ("reject", "fragment, not a question"),  # "Star Trek: The Last Hope?"
    (26, 0): (
        "keep",
        "complete question",
    ),  # ends in a closing quote without "?"; the model stopped, not the token limit
    (27, 0): NOT_A_QUESTION,  # a row of emoji
    (31, 5): (
        "keep",
        "complete question",
    ),  # "CMV: Reality TV is harmless entertainment." is a complete r/changemyview post
    (35, 5): MARKER_ONLY,
    (35, 7): MARKER_ONLY,  # "A:"
    (38, 4): ("reject", "greeting, not a question"),  # "How do you do?"
    (40, 0): MARKER_ONLY,  # "1. Cookie: "
    (
        42,
        0,
    ): ASSISTANT_TALK,  # "Can you tell me what type of engine light you're referring to?": the assistant asking back
    (43, 1): ASSISTANT_TALK,  # 'Your question: "..." is a classic riddle.'
    (56, 4): NOT_A_QUESTION,  # "5. Quantum mechanics": a topic, complete but no question
    (58, 2): ("keep", "complete question"),  # the question is whole; only its trailing " -" annotation was cut
    (60, 0): ("reject", "question followed by its own answer"),
    (60, 1): ("reject", "question followed by its own answer"),
    (66, 1): ("keep", "complete question"),  # 'Challenge: "CMV: ..."': a CMV post behind a label
    # seed 2: labelled after the filter was written, not used to write it
    (73, 2): ("keep", "complete question"),  # complete how-to; only its trailing " -" annotation was cut (as 58:2)
    (75, 0): NOT_A_QUESTION,
    (75, 1): NOT_A_QUESTION,  # emoji
    (77, 2): MARKER_ONLY,  # "A:"
    (78, 1): ("reject", "fragment, not a question"),
    (78, 2): ("reject", "fragment, not a question"),  # "A: 1. How to identify it"
    (82, 0): MARKER_ONLY,
    (82, 5): MARKER_ONLY,  # "1. 1. Questions about back pain:": a heading
    # "- 1.1. What is it?", "How to avoid it?", "What to do?": no subject without the heading above them
    (82, 1): ("reject", "fragment, not a question"),
    (82, 2): ("reject", "fragment, not a question"),
    (82, 3): ("reject", "fragment, not a question"),
    (82, 4): ("reject", "fragment, not a question"),
    (87, 2): (
        "keep",
        "complete question",
    ),  # '"EBO: I'm a digital nomad, how do I avoid ...?" score 0.68': whole, score and all
    (90, 3): ("reject", "fragment, not a question"),  # "What is the difference between the two?"
    (94, 6): ASSISTANT_TALK,  # "Just finish with 5 unique questions:"
    (98, 5): MARKER_ONLY,  # "Output:"
    (100, 0): ASSISTANT_TALK,  # "I'm sorry for the confusion, but I can help you with that."
    (102, 2): ASSISTANT_TALK,  # "You mentioned 'CMV:' in your last message, ...": talk about the conversation
    (104, 4): NOT_A_QUESTION,  # "The power of a rainbow to make someone's day better"
}


def main() -> None:
    responses = [json.loads(line) for line in (DATA / "prompt_filter_raw.jsonl").read_text().splitlines()]
    rows = []
    for n, r in enumerate(responses):
        lines = candidates(r["response"])
        for k, line in enumerate(lines):
            label, reason = OVERRIDES.get((n, k)) or rule_label(line, k == len(lines) - 1)
            rows.append({"response": n, "line": k, "text": line, "label": label, "reason": reason})
    (DATA / "prompt_filter_sample.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    )
    print(
        f"{len(rows)} lines: {sum(r['label'] == 'keep' for r in rows)} keep, {sum(r['label'] == 'reject' for r in rows)} reject"
    )


if __name__ == "__main__":
    main()
