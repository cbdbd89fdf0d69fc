"""A PPO group across machines, simulated on this one: two launcher invocations (machine ranks 0 and 1)
meet at a rendezvous on 127.0.0.1 and reproduce a one-process run with the same global batch.

Machine 0 is the training stage's own launch (``train_distributed``); machine 1 is what a user starts on
another node, ``python -m aopcore_hf.ppo.launch join CONFIG --machine-rank 1``, which knows only the
config's [trainer] section and receives the job from rank 0.
"""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from test_ppo_distributed import KEYS, PROMPTS, weights  # noqa: E402

from aopcore import InputError  # noqa: E402
from aopcore.ledger import StageMeter  # noqa: E402
from aopcore_hf.options import PPOOptions  # noqa: E402
from aopcore_hf.ppo import PPOPolicyTrainer  # noqa: E402
from aopcore_hf.ppo.launch import check_joined, joined_options, launch_command  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trainer_toml(path: Path, policy: Path, port: int) -> Path:
    lines = [
        "[trainer]",
        'plugin = "ppo"',
        f'model = "{policy}"',
        'device = "cpu"',
        "learning_rate = 3e-3",
        "batch_size = 8",
        "mini_batch_size = 4",
        "ppo_epochs = 2",
        "init_kl_coef = 0.05",
        "num_processes = 2",
        "num_machines = 2",
        'main_address = "127.0.0.1"',
        f"main_port = {port}",
    ]
    lines += ["[trainer.generation]", "max_new_tokens = 6", "do_sample = false"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.torchrun
@pytest.mark.slow
def test_two_machine_group_matches_one_process(tmp_path: Path):
    policy = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.6)
    port = free_port()
    config = trainer_toml(tmp_path / "experiment.toml", policy, port)
    options = joined_options(config)  # machine 0 uses the same [trainer] section as the joining machine
    assert options.num_machines == 2 and options.num_processes == 2
    cmd0, cmd1 = (
        launch_command(options, tmp_path / "job.json"),
        launch_command(options, tmp_path / "job.json", machine_rank=1),
    )
    for cmd, rank in ((cmd0, "0"), (cmd1, "1")):
        assert cmd[cmd.index("--node_rank") + 1] == rank and cmd[cmd.index("--nproc_per_node") + 1] == "1"
        assert cmd[cmd.index("--master_addr") + 1] == "127.0.0.1" and cmd[cmd.index("--master_port") + 1] == str(port)

    joiner = subprocess.Popen(
        [sys.executable, "-m", "aopcore_hf.ppo.launch", "join", str(config), "--machine-rank", "1", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with StageMeter("train") as meter:
            two = PPOPolicyTrainer(options).train(
                policy, PROMPTS, WordReward("good"), passes=2, out=tmp_path / "machines-2", seed=7
            )
        assert joiner.wait(timeout=120) == 0, joiner.stdout.read()
    finally:
        if joiner.poll() is None:
            joiner.kill()
    assert meter.counts["reward_calls"] == 16  # every rank's rollouts were scored here, on machine 0

    common = options.model_dump(exclude={"num_processes", "num_machines", "main_port"})
    one = PPOPolicyTrainer(PPOOptions(**common)).train(
        policy, PROMPTS, WordReward("good"), passes=2, out=tmp_path / "one", seed=7
    )
    assert two.steps == one.steps == 2 and two.episodes == one.episodes == 16
    for m1, m2 in zip(one.metrics, two.metrics):
        for key in KEYS:
            assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key
    from safetensors.torch import load_file

    initial = load_file(policy / "model.safetensors")
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "machines-2")
    assert max(float((w1[k] - initial[k]).abs().max()) for k in initial) > 1e-2  # training moved the weights
    assert w1.keys() == w2.keys()
    # The key bias of attention adds the same q.b_k to every score of a query, which softmax cancels: its true
    # gradient is 0 and Adam scales the rounding noise there to full steps (1.8e-2 seen), in either run. It
    # changes nothing the model computes (the logits check below); every other weight must agree.
    width = initial["transformer.h.0.attn.c_attn.bias"].numel() // 3
    drift, worst = 0.0, ""
    for k in w1:
        diff = (w1[k] - w2[k]).abs()
        if k.endswith("attn.c_attn.bias"):
            diff = torch.cat([diff[:width], diff[2 * width :]])
        if float(diff.max()) > drift:
            drift, worst = float(diff.max()), k
    assert drift < 1e-4, f"two machines trained other weights than one process ({worst}: {drift:.2e})"
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[3, 15, 16, 17, 11, 26], [20, 24, 4, 22, 5, 9]])
    logits = [
        AutoModelForCausalLM.from_pretrained(tmp_path / name)(input_ids=ids).logits for name in ("one", "machines-2")
    ]
    assert torch.allclose(logits[0], logits[1], atol=1e-4)  # the two trained policies compute the same function


def test_a_machine_that_joins_with_other_launch_settings_is_refused():
    main = PPOOptions(batch_size=8, mini_batch_size=4, num_processes=2, num_machines=2, main_port=29555)
    check_joined(main, main.model_copy(update={"learning_rate": 1.0}), 1)  # only launcher settings must agree
    with pytest.raises(RuntimeError, match="differ from machine 0's in main_port"):
        check_joined(main.model_copy(update={"main_port": 29556}), main, 1)


def test_join_checks_its_config_and_rank(tmp_path: Path):
    single = tmp_path / "single.toml"
    single.write_text('[trainer]\nplugin = "ppo"\n')
    with pytest.raises(InputError, match="num_machines is 1"):
        joined_options(single)
    good = trainer_toml(tmp_path / "good.toml", tmp_path, 29500)
    with pytest.raises(InputError, match="trainer: .*multiple of num_machines"):
        joined_options(good, ["trainer.num_machines=3"])  # 2 processes over 3 machines
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "aopcore_hf.ppo_launch",
            "join",
            str(good),
            "--machine-rank",
            "2",
        ],  # the published path still works
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--machine-rank must be in 1..1" in out.stderr and "Traceback" not in out.stderr


def test_joined_paths_resolve_like_machine_zeros(tmp_path: Path):
    (tmp_path / "ds.yaml").write_text("compute_environment: LOCAL_MACHINE\n")
    config = trainer_toml(tmp_path / "experiment.toml", tmp_path, 29500)
    options = joined_options(config, ['trainer.accelerate_config="ds.yaml"'])
    assert options.accelerate_config == str(
        tmp_path / "ds.yaml"
    )  # relative to the config, as the experiment resolves it
    cmd = launch_command(options, tmp_path / "job.json", machine_rank=1)
    assert (
        cmd[cmd.index("--config_file") + 1] == str(tmp_path / "ds.yaml") and cmd[cmd.index("--machine_rank") + 1] == "1"
    )
    assert cmd[cmd.index("--num_machines") + 1] == "2" and cmd[cmd.index("--main_process_port") + 1] == "29500"
