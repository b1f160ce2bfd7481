"""A killed pipeline, rerun with the same command, reuses finished teachers and ends the same."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import QUICK, SCRIPT

TEACHERS = (
    "--teachers=[{'model':'BPR','name':'A'},{'model':'BPR','name':'B','embedding_size':32},"
    "{'model':'BPR','name':'C','embedding_size':16}]"
)


def command(tiny, trajectory_dir, result_file):
    return [
        sys.executable, SCRIPT, *QUICK, "--model=HetComp", "--dataset=tiny", f"--data_path={tiny['data_path']}",
        TEACHERS, "--teacher_defaults={'epochs':100,'stopping_step':1000,'learning_rate':0.01}",
        f"--trajectory_dir={trajectory_dir}", f"--result_file={result_file}", "--epochs=6", "--hetcomp_k=20",
        "--discrepancy_depth=10", "--detailed_long=10", "--detailed_short=5", "--dkc_start=2", "--dkc_period=2",
        "--eval_step=2",
    ]


def test_kill_during_a_teacher_then_rerun(tiny, tmp_path):
    reference = tmp_path / "reference.json"
    subprocess.run(command(tiny, tmp_path / "t_ref", reference), cwd=tmp_path, check=True, capture_output=True)

    folder = tmp_path / "t" / "tiny"
    proc = subprocess.Popen(command(tiny, tmp_path / "t", tmp_path / "r.json"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (folder / "B.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # during the third teacher
    proc.wait()
    finished = {f for f in os.listdir(folder) if not f.startswith(".")}
    assert finished == {"A.safetensors", "B.safetensors"}, finished
    stamps = {f: os.stat(folder / f).st_mtime_ns for f in finished}

    rerun = subprocess.run(command(tiny, tmp_path / "t", tmp_path / "r.json"), cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert {f: os.stat(folder / f).st_mtime_ns for f in finished} == stamps  # reused, not retrained
    assert (folder / "C.safetensors").exists()
    first, second = json.loads(reference.read_text()), json.loads((tmp_path / "r.json").read_text())
    assert second["test_result"] == first["test_result"]
    assert [r["test_result"] for r in second["rows"]] == [r["test_result"] for r in first["rows"]]
