"""FeedbackLLM and Judge on top of a provider backend and the shared call layer."""

from __future__ import annotations

from collections.abc import Sequence

from aopcore import JudgeItem, Verdict
from aopcore.judge_prompt import judge_prompt, parse_choice
from aopcore_providers.backends import SENDERS, api_key
from aopcore_providers.calls import CallLayer
from aopcore_providers.options import ProviderOptions


class ProviderLLM:
    """A remote model that writes prompts. Failed or blocked calls yield "" and are counted in ``failures``."""

    provider = ""
    purpose = "feedback"

    def __init__(self, options: ProviderOptions) -> None:
        self.options = options
        key = api_key(options)  # read once from the environment; kept only inside the client
        self.calls = CallLayer(
            self.provider, options, lambda: SENDERS[self.provider](options, key), purpose=self.purpose
        )

    def complete(self, prompts: Sequence[str]) -> list[str]:
        return self.calls.complete(prompts)


class ProviderJudge(ProviderLLM):
    """The paper's pairwise judge prompt sent to a remote model; unparseable replies become dropped verdicts."""

    purpose = "judge"

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        replies = self.complete([judge_prompt(it.question, it.answer_a, it.answer_b) for it in items])
        return [Verdict(it.id, parse_choice(r), raw=(r or "")[:200]) for it, r in zip(items, replies)]


def _make(provider_name: str, base: type) -> type:
    return type(
        f"{provider_name.title()}{base.__name__}", (base,), {"provider": provider_name, "__doc__": base.__doc__}
    )


GeminiLLM, OpenAILLM, AnthropicLLM = (_make(p, ProviderLLM) for p in ("gemini", "openai", "anthropic"))
GeminiJudge, OpenAIJudge, AnthropicJudge = (_make(p, ProviderJudge) for p in ("gemini", "openai", "anthropic"))
