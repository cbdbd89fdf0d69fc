"""A plain TRL GRPO script on the verifiable-skills testbed (CPU, seconds): the baseline of examples/trl_grpo_aop.py.

The policy is the testbed's tiny GPT-2, the reward the testbed verifier (1 if the answer is correct), the prompts a
fixed pool of testbed questions. `diff examples/trl_grpo_plain.py examples/trl_grpo_aop.py` shows what aopcore adds.

    OMP_NUM_THREADS=1 .venv/bin/python examples/trl_grpo_plain.py --out runs/trl-grpo-plain
"""
import argparse
import os

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig, GRPOTrainer

from aopcore_hf.generation import PLAIN_TEMPLATE
from aopcore_hf.models import offline_model_dir
from aopcore_testbed.sets import load
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
dataset = Dataset.from_list([row(q.text) for q in load("pool")])
config = GRPOConfig(output_dir=f"{args.out}/trl", per_device_train_batch_size=32, num_generations=4, max_completion_length=4,
                    temperature=1.0, learning_rate=1e-4, beta=0.0, max_steps=args.steps, save_strategy="steps", save_steps=4,
                    logging_steps=1, report_to="none", use_cpu=True, seed=0)
trainer = GRPOTrainer(model=model, reward_funcs=correct, args=config, train_dataset=dataset, processing_class=tokenizer)
last = get_last_checkpoint(config.output_dir) if os.path.isdir(config.output_dir) else None
trainer.train(resume_from_checkpoint=last)
trainer.save_model(f"{args.out}/policy")
