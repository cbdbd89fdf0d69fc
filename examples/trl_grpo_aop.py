"""TRL GRPO on the verifiable-skills testbed, its prompts chosen by aopcore's AOP curriculum (CPU, about a minute).

examples/trl_grpo_plain.py without the lines marked `# aopcore`: every 4 steps (a round) AOP evaluates the live model
on the testbed's held-out questions, shows the feedback LLM (the testbed writer) the answers and their verifier
rewards, and trains the next round on the questions it writes for the weak categories. Each round's allocation goes to
`<out>/session/rounds/round-RR.json`; the session folder keeps everything in run-directory formats, and a killed run
resumes (curriculum included) from its last TRL checkpoint when started again. See docs/integrations.md.

    OMP_NUM_THREADS=1 .venv/bin/python examples/trl_grpo_aop.py --out runs/trl-grpo-aop
"""
import argparse
import os

from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig, GRPOTrainer

from aopcore import CurriculumSession  # aopcore
from aopcore_hf.generation import PLAIN_TEMPLATE
from aopcore_hf.models import offline_model_dir
from aopcore_integrations.trl import TRLCurriculum  # aopcore
from aopcore_testbed.verifier import VerifierReward

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="runs/trl-grpo")
parser.add_argument("--steps", type=int, default=16)
args = parser.parse_args()


def row(text):
    return {"prompt": PLAIN_TEMPLATE.format(prompt=text), "question": text}


verifier = VerifierReward()


def correct(prompts, completions, question, **_):
    return verifier.score(question, completions)


path = offline_model_dir("testbed-tiny")  # a saveable HF folder (or "smollm2-135m-instruct"), built once, then cached
model = AutoModelForCausalLM.from_pretrained(path)
tokenizer = AutoTokenizer.from_pretrained(path)
session = CurriculumSession("aop", options={"samples_per_category": 6, "draws": 8, "questions_per_call": 20, "unlabeled": "drop"},  # aopcore
                            heldout="testbed:heldout", state_dir=f"{args.out}/session", budget=32, feedback="testbed-writer", reward="verifier")  # aopcore
aop = TRLCurriculum(session, every=max(1, args.steps // 4), row=row)  # aopcore
config = GRPOConfig(output_dir=f"{args.out}/trl", per_device_train_batch_size=32, num_generations=4, max_completion_length=4,
                    temperature=1.0, learning_rate=1e-4, beta=0.0, max_steps=args.steps, save_strategy="steps", save_steps=4,
                    logging_steps=1, report_to="none", use_cpu=True, seed=0, shuffle_dataset=False)  # aopcore
trainer = GRPOTrainer(model=model, reward_funcs=aop.reward(correct), args=config, train_dataset=aop.dataset(), processing_class=tokenizer,  # aopcore
                      callbacks=[aop.callback])  # aopcore
last = get_last_checkpoint(config.output_dir) if os.path.isdir(config.output_dir) else None
trainer.train(resume_from_checkpoint=last)
trainer.save_model(f"{args.out}/policy")
