"""Deterministic stand-ins for LLM-facing components, used by the curricula tests.

``ScriptedLLM`` behaves like a competent feedback model: it reads the domain summary
in the score-based prompt and writes labelled questions for the lowest-scoring
domains, or answers keyword prompts with numbered lists. Its wording varies with a
counter so de-duplication has real work to do.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEmbedder:
    """Bag-of-words hashed into 256 dims: texts sharing words are similar, as with a real embedder."""

    def embed(self, texts):
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


TOPICS = [
    "oven",
    "engine",
    "contract",
    "planet",
    "history",
    "puppy",
    "salary",
    "virus",
    "sauce",
    "poem",
    "bridge",
    "tax",
]


class ScriptedLLM:
    def __init__(self, junk_every: int = 0) -> None:
        self.calls = 0
        self.prompts: list[str] = []
        self.junk_every = junk_every

    def complete(self, prompts):
        out = []
        for p in prompts:
            self.calls += 1
            self.prompts.append(p)
            if self.junk_every and self.calls % self.junk_every == 0:
                out.append("I'm sorry, but I can't help with that." if self.calls % 2 else "")
                continue
            out.append(self._answer(p))
        return out

    def _answer(self, prompt: str) -> str:
        n = int(re.search(r"(?:exactly |write |of )(\d+)", prompt, re.I).group(1))
        c = self.calls
        summary = re.search(r"lowest first\):\n(.*?)\n\n", prompt, re.S)
        if summary:  # score-based, llm targeting: label questions with the two weakest domains
            weak = [line.split(":")[0] for line in summary.group(1).splitlines()][:2]
            lines = [
                f"{weak[k % 2]} | {TOPICS[(c + k) % 12]} question {c}-{k}: how would you handle {TOPICS[(c * 7 + k) % 12]} {c} {k}?"
                for k in range(n)
            ]
            return "Here are the questions:\n" + "\n".join(lines)
        target = re.search(r'domain "([^"]+)"|about "([^"]+)"|forum r/(\w+)', prompt)
        topic = next(g for g in target.groups() if g)
        return "\n".join(
            f"{k + 1}. My {topic} {TOPICS[(c + k) % 12]} issue number {c}-{k}, what should I do?" for k in range(n)
        )
