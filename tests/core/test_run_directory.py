"""A finished run leaves a tidy run directory: no empty work folders, and nothing a crash left is deleted."""

from pathlib import Path


def test_a_finished_run_leaves_no_empty_work_folders(tmp_path: Path):
    from aopcore import Budget, Experiment, Question

    import toy_components as toy

    class CheckpointingTrainer(toy.ToyTrainer):
        """Takes a scratch folder for mid-stage checkpoints, so the run creates scratch/ (and attempts/)."""

        def train(self, policy, prompts, reward, *, passes, out, seed, scratch: Path):
            assert scratch.is_dir()
            (scratch / "step-1").write_text("checkpoint")
            return super().train(policy, prompts, reward, passes=passes, out=out, seed=seed)

    heldout = [Question(f"h{i}", f"held-out question {i}", c) for i, c in enumerate("abab")]
    exp = Experiment(
        name="tidy",
        output_dir=tmp_path,
        trainer=CheckpointingTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=heldout,
        test_prompts=[Question("t0", "test 0")],
        judge=None,
        budget=Budget(iterations=1, records_per_iteration=4, passes=1),
        seed=0,
    )
    exp.run()
    run = tmp_path / "tidy"
    assert (run / "stages" / "report.json").exists()
    assert not (run / "attempts").exists() and not (run / "scratch").exists()
    assert (run / "train-index").is_dir() and (run / "fingerprint.json").exists()  # kept: a rerun reads them
    # something left behind (a crash's checkpoint) is never deleted by the tidy-up
    (run / "scratch" / "arms__static__iter-02__train").mkdir(parents=True)
    Experiment(
        name="tidy",
        output_dir=tmp_path,
        trainer=CheckpointingTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=heldout,
        test_prompts=[Question("t0", "test 0")],
        judge=None,
        budget=Budget(iterations=1, records_per_iteration=4, passes=1),
        seed=0,
    ).run()
    assert (run / "scratch" / "arms__static__iter-02__train").is_dir()
