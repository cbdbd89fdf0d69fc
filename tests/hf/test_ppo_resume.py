"""Mid-stage resume of our PPO: a stage SIGKILLed mid-way redoes only the steps after its last save, and ends identical."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from helpers.tiny_models import save_tiny_gpt2  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]  # the tests root (helpers)
STEPS = 6  # 12 prompts, batch 2, one pass
OPTIONS = dict(
    learning_rate=3e-3,
    batch_size=2,
    mini_batch_size=2,
    ppo_epochs=2,
    init_kl_coef=0.05,
    device="cpu",
    generation={"max_new_tokens": 6, "temperature": 1.0},
    save_every_steps=2,
)

# Runs one PPO stage; with KILL_AT=n the reward SIGKILLs the process at its n-th call (during step n).
SCRIPT = """
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers.tiny_models import KillAtCallReward as Reward  # SIGKILLs the process at reward call $KILL_AT
from aopcore import Prompt
from aopcore_hf.options import PPOOptions
from aopcore_hf.ppo import PPOPolicyTrainer


def main(policy, out, scratch, options):
    Reward.calls = 0
    prompts = [Prompt(f"p{{i}}", t, "c") for i, t in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?"] * 4)]
    out.mkdir(parents=True, exist_ok=True)
    stats = PPOPolicyTrainer(PPOOptions(model=str(policy), **options)).train(
        policy, prompts, Reward("good"), passes=1, out=out, seed=7, scratch=scratch)
    (out / "stats.json").write_text(json.dumps({{"steps": stats.steps, "tokens": stats.tokens_generated, "metrics": stats.metrics,
                                                 "reward_calls": Reward.calls}}))

if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]), json.loads(sys.argv[4]))
"""


def load_script(path: Path, text: str):
    """The stage script as a module: the uninterrupted and the resumed stage run in this process, only the killed one apart."""
    import importlib.util

    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def killed(script: Path, kill_at: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_AT": str(kill_at), "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=300)


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    state.update({f"value_head.{k}": v for k, v in torch.load(folder / "value_head.pt").items()})
    return state


def without_timing(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in metrics]


@pytest.mark.slow
@pytest.mark.parametrize("adapters", [None, {"r": 2, "alpha": 4}], ids=["full", "lora"])
def test_killed_ppo_stage_resumes_from_its_last_save_with_identical_results(tmp_path: Path, adapters):
    """With LoRA the save holds the adapters and their Adam states; the frozen weights come from the input again."""
    policy = save_tiny_gpt2(tmp_path / "policy")
    options = {**OPTIONS, "lora": adapters}
    stage = load_script(tmp_path / "ppo_stage.py", SCRIPT.format(tests=str(TESTS)))
    stage.main(policy, tmp_path / "whole", tmp_path / "scratch-whole", options)

    proc = killed(
        tmp_path / "ppo_stage.py",
        5,
        str(policy),
        str(tmp_path / "resumed"),
        str(tmp_path / "scratch"),
        json.dumps(options),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]  # killed during step 5
    saves = sorted(p.name for p in (tmp_path / "scratch").iterdir())
    assert saves == ["ppo-step-00000004"]  # every 2 steps, older saves removed
    assert not (tmp_path / "resumed" / "stats.json").exists()

    stage.main(policy, tmp_path / "resumed", tmp_path / "scratch", options)
    a = json.loads((tmp_path / "whole" / "stats.json").read_text())
    b = json.loads((tmp_path / "resumed" / "stats.json").read_text())
    assert a["reward_calls"] == STEPS and b["reward_calls"] == STEPS - 4  # only steps 5 and 6 were redone
    assert b["steps"] == STEPS and [m["step"] for m in b["metrics"]] == list(range(1, STEPS + 1))
    assert without_timing(b["metrics"]) == without_timing(a["metrics"]) and b["tokens"] == a["tokens"]
    wa, wb = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((tmp_path / "whole" / "ppo_state.json").read_text()) == json.loads(
        (tmp_path / "resumed" / "ppo_state.json").read_text()
    )


def test_a_save_from_another_job_is_ignored(tmp_path: Path):
    from aopcore_hf.ppo.checkpoint import PPOCheckpoints
    from aopcore_hf.ppo.comm import LocalComm

    module = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(module.parameters())
    first = PPOCheckpoints(tmp_path, 1, LocalComm(), job={"seed": 1})
    first.save(3, module=module, optimizer=optimizer, kl_value=0.1, metrics=[{"step": 1}], tokens_generated=5)
    assert first.latest() == tmp_path / "ppo-step-00000003"
    assert (
        PPOCheckpoints(tmp_path, 1, LocalComm(), job={"seed": 2}).latest() is None
    )  # other prompts or options: start over
    assert PPOCheckpoints(tmp_path, None, LocalComm(), job={"seed": 1}).latest() is None  # saving off: never resume
    assert not first.due(3, 3) and first.due(2, 3)  # the last step is saved as the policy, not as a checkpoint


# The TRL trainers resume through their own checkpoints (save_steps, resume_from_checkpoint) in the stage's scratch.
TRL_SCRIPT = """
import json, os, signal, sys
from pathlib import Path
from aopcore import Prompt
from aopcore_hf.options import TRLOptions
from aopcore_hf.trl_trainers import GRPOPolicyTrainer

class Reward:
    calls = 0
    def score(self, prompts, responses):
        Reward.calls += 1
        if Reward.calls == int(os.environ.get("KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return [len(set(r.split())) / 6 for r in responses]  # varies between samples, so there is something to learn

def main(policy, out, scratch):
    Reward.calls = 0
    prompts = [Prompt(f"p{i}", t, "c") for i, t in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 2)]
    out.mkdir(parents=True, exist_ok=True)
    opts = TRLOptions(model=str(policy), learning_rate=5e-3, batch_size=4, num_generations=2, beta=0.0, device="cpu",
                      generation={"max_new_tokens": 6, "temperature": 1.0}, save_every_steps=1)
    stats = GRPOPolicyTrainer(opts).train(policy, prompts, Reward(), passes=1, out=out, seed=7, scratch=scratch)
    (out / "stats.json").write_text(json.dumps({"steps": stats.steps, "tokens": stats.tokens_generated, "metrics": stats.metrics,
                                                "reward_calls": Reward.calls}))

if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]))
"""


@pytest.mark.slow
def test_killed_grpo_stage_resumes_from_its_trl_checkpoint(tmp_path: Path):
    from safetensors.torch import load_file

    policy = save_tiny_gpt2(tmp_path / "policy")
    stage = load_script(tmp_path / "grpo_stage.py", TRL_SCRIPT)
    stage.main(policy, tmp_path / "whole", tmp_path / "scratch-whole")
    proc = killed(tmp_path / "grpo_stage.py", 3, str(policy), str(tmp_path / "resumed"), str(tmp_path / "scratch"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]  # during step 3: checkpoints 1 and 2 exist
    stage.main(policy, tmp_path / "resumed", tmp_path / "scratch")
    a, b = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("whole", "resumed"))
    assert a["steps"] == b["steps"] == 4 and a["reward_calls"] == 4 and b["reward_calls"] == 2
    assert b["tokens"] == a["tokens"]  # the tokens of steps before the kill were kept with the checkpoint
    keep = ("loss", "reward", "reward_std", "grad_norm", "entropy")
    assert [{k: m.get(k) for k in keep} for m in b["metrics"]] == [{k: m.get(k) for k in keep} for m in a["metrics"]]
    assert any(m.get("grad_norm") for m in a["metrics"])  # it really trained
    wa, wb = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
