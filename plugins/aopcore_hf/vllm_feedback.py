"""Kept for compatibility (``aopcore_hf.vllm_feedback:VLLMFeedbackLLM``, as earlier docs published it): the vLLM
feedback LLM and judge are in :mod:`aopcore_hf.vllm.feedback`."""

from __future__ import annotations

from aopcore_hf.vllm.feedback import VLLMFeedbackLLM, VLLMJudge, VLLMJudgeOptions, VLLMLLMOptions  # noqa: F401
