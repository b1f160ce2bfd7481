"""What a pipeline run prints: a short console, and a complete log file per model."""

import re

import torch

from recbole_hetcomp.quick_start import run_recbole_hetcomp

TEACHERS = {"teachers": ["BPR", "EASE"], "teacher_defaults": {"epochs": 8, "learning_rate": 0.01}}
STUDENT = {"epochs": 6, "eval_step": 2, "dkc_start": 2, "dkc_period": 2, "hetcomp_k": 20, "discrepancy_depth": 10,
           "detailed_long": 10, "detailed_short": 5, "embedding_size": 4}


def test_pipeline_console_is_short_and_each_model_has_its_own_log_file(tiny, workdir, capsys):
    result = run_recbole_hetcomp(model="HetComp", dataset="tiny",
                                 config_dict=dict(tiny, state="INFO", **TEACHERS, **STUDENT))
    console = capsys.readouterr().err
    lines = console.splitlines()

    # the config: one summary line per model on the console, the full dump in the log files only
    summaries = [m.group(1) for m in map(re.compile(r"INFO  (\w+) on tiny; device ").search, lines) if m]
    assert summaries == ["HetComp", "BPR", "EASE"], console
    device = "cpu (no GPU visible)" if not torch.cuda.is_available() else "cuda"
    assert all(f"device {device}" in line for line in lines if " on tiny; device " in line)
    assert "General Hyper Parameters" not in console

    # progress with totals; checkpoint saves reported once per model, not per save
    assert any("teacher 1 of 2: BPR: epoch 1 of 8, " in line and "ETA" in line for line in lines), console
    assert any("HetComp: epoch 1 of 6, " in line for line in lines), console
    assert "Saving current" not in console
    kept = [line for line in lines if "best checkpoint kept in" in line]
    assert [line.split(" INFO  ")[1].split(":")[0] for line in kept] == ["teacher 1 of 2", "teacher 2 of 2", "HetComp"]
    assert "epoch 3 training" not in console  # RecBole's per-epoch lines are in the log file
    assert len(lines) < 40, console

    # every model's run wrote its own log file; the student's names its teachers' files
    logs = {model: list((workdir / "log" / model).glob("*.log")) for model in ("HetComp", "BPR", "EASE")}
    assert all(len(files) == 1 for files in logs.values()), logs
    bpr_log = logs["BPR"][0].read_text()
    assert "General Hyper Parameters" in bpr_log and "epoch 7 training" in bpr_log
    assert "Saving current" not in bpr_log
    student_log = logs["HetComp"][0].read_text()
    assert f"its log: log/BPR/{logs['BPR'][0].name}" in student_log
    assert f"its log: log/EASE/{logs['EASE'][0].name}" in student_log
    assert "BPR on tiny" not in student_log, "a teacher's lines go to the teacher's file"
    assert "epoch 5 training" in student_log  # the student's own lines came back to its file after the teachers
    assert result["log_file"] == f"log/HetComp/{logs['HetComp'][0].name}"


def test_an_interrupted_student_names_the_checkpoint_to_resume_from(tmp_path, monkeypatch):
    from recbole_hetcomp.console import interrupted_message

    checkpoint = tmp_path / "HetComp-Dec-04-2026_19-21-24-9489.pth"
    monkeypatch.setattr("recbole_hetcomp.console.PROGRESS", {"stage": "training HetComp", "checkpoint": str(checkpoint)})
    assert interrupted_message() == "interrupted (training HetComp); nothing was kept"  # no validation yet
    checkpoint.write_bytes(b"")
    assert interrupted_message().endswith(f"add --resume_file={checkpoint} to continue from it")
