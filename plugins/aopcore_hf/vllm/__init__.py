"""aopcore on vLLM: the engine process (:mod:`.engine`, which starts :mod:`.worker` under the vLLM environment's
Python), policy generation through it (:mod:`.generation`), the feedback LLM and judge on it (:mod:`.feedback`), and
``python -m aopcore_hf.vllm.serve`` for an OpenAI-compatible server. Importing this package imports no vLLM."""
