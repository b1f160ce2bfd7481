"""Runs started side by side in one working folder keep their own log, checkpoint and TensorBoard files."""

import os
import subprocess
import sys
import textwrap

from conftest import REPO, write_tiny_dataset

# One run of the command-line script, made to meet the worst case for sure rather than by
# luck: RecBole's clock is frozen (both runs get the same time stamp), every check whether
# a log/, saved/ or log_tensorboard/ path exists says "no" (as if both runs checked before
# either created it), and the runs wait for each other before starting.
RACE = textwrap.dedent("""
    import datetime, os, sys, time, types

    import recbole.utils.utils

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 1, 12, 0, 0)

    recbole.utils.utils.datetime = types.SimpleNamespace(datetime=Frozen)
    real_exists = os.path.exists

    def stale_exists(path):
        if os.path.normpath(os.fspath(path)).split(os.sep)[0] in ("log", "saved", "log_tensorboard"):
            return False
        return real_exists(path)

    os.path.exists = stale_exists
    me, others = os.environ["RACE_ME"], os.environ["RACE_OTHERS"].split(",")
    open("ready-" + me, "w").close()
    while not all(real_exists("ready-" + o) for o in others):
        time.sleep(0.01)
    sys.path.insert(0, {repo!r})
    import run_recbole_hetcomp
    sys.exit(run_recbole_hetcomp.main(sys.argv[1:]))
""")


def test_two_runs_of_one_model_started_together_keep_their_own_files(tmp_path):
    data_path = write_tiny_dataset(tmp_path / "data")
    (tmp_path / "race.py").write_text(RACE.format(repo=REPO))
    # Same model, same config: RecBole would give both the same log file name.
    args = ["--model=BPR", "--dataset=tiny", f"--data_path={data_path}", "--epochs=1", "--show_progress=False",
            "--state=INFO"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    runs = [subprocess.Popen([sys.executable, "race.py", *args], cwd=tmp_path, env=dict(env, RACE_ME=me, RACE_OTHERS=other),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for me, other in (("a", "b"), ("b", "a"))]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-3000:]

    logs = sorted((tmp_path / "log" / "BPR").iterdir())
    assert len(logs) == 2, logs
    assert all(p.name.startswith("BPR-tiny-Jan-01-2026_12-00-00-") for p in logs)  # same second, two files
    for log in logs:
        assert log.read_text().count("test result") == 1  # each run wrote only its own log
    checkpoints = sorted((tmp_path / "saved").iterdir())
    assert len(checkpoints) == 2 and all(p.name.startswith("BPR-Jan-01-2026_12-00-00-") for p in checkpoints)
    boards = sorted((tmp_path / "log_tensorboard").iterdir())
    assert [b.name for b in boards] == [p.stem for p in logs]
    assert all(any(f.name.startswith("events.out.tfevents") for f in b.iterdir()) for b in boards)


def test_trainers_in_one_process_never_share_a_checkpoint_or_tensorboard_folder(workdir):
    import logging

    from recbole_hetcomp.compat import _own_tensorboard, unique_checkpoint_name

    first, second = (unique_checkpoint_name("saved/BPR-Jan-01-2026_12-00-00.pth") for _ in range(2))
    assert first == f"saved/BPR-Jan-01-2026_12-00-00-{os.getpid()}.pth"
    assert second == f"saved/BPR-Jan-01-2026_12-00-00-{os.getpid()}-2.pth"
    logger = logging.getLogger("two-trainers")
    logger.addHandler(logging.FileHandler(workdir / "BPR-tiny-now.log", delay=True))
    boards = [_own_tensorboard(logger) for _ in range(2)]
    assert [os.path.basename(b.log_dir) for b in boards] == ["BPR-tiny-now", "BPR-tiny-now-2"]
    for b in boards:
        b.close()


def test_two_runs_that_need_one_missing_teacher_record_it_once(tmp_path):
    """Two shells start a student on the same data and teachers at once: one records the
    teacher, the other waits for its file and reuses it (one writer per trajectory file)."""
    data_path = write_tiny_dataset(tmp_path / "data")
    (tmp_path / "race.py").write_text(RACE.format(repo=REPO))
    args = ["--dataset=tiny", f"--data_path={data_path}", "--teachers=['BPR']", "--teacher_defaults={'epochs':3}",
            f"--trajectory_dir={tmp_path / 'trajectories'}", "--show_progress=False", "--state=INFO"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    students = (("a", "b", ["--model=RankEnsemble"]), ("b", "a", ["--model=RRD", "--epochs=2", "--rrd_k=10", "--rrd_n=20"]))
    runs = [subprocess.Popen([sys.executable, "race.py", *args, *own], cwd=tmp_path,
                             env=dict(env, RACE_ME=me, RACE_OTHERS=other),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for me, other, own in students]
    outputs = []
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-3000:]
        outputs.append(output)

    assert len(list((tmp_path / "log" / "BPR").iterdir())) == 1  # trained by one of the two runs
    said = "\n".join(outputs)
    assert said.count("teacher 1 of 1: BPR training and recording") == 1
    assert said.count("teacher 1 of 1: BPR reused from") == 1
