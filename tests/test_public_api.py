"""The package's shape as a user meets it: the public API, serving a saved student, settings
that come only from what the caller passes, each teacher file read once, flat model files."""

import ast
import os
import sys

import pytest
import torch

import recbole_hetcomp
from recbole_hetcomp.config import Config
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.trajectory import teacherset

from conftest import split_and_model

TEACHERS = {"teachers": ["BPR", "EASE"], "teacher_defaults": {"epochs": 4, "learning_rate": 0.01}}
STUDENT = {"epochs": 4, "eval_step": 2, "dkc_start": 2, "dkc_period": 2, "embedding_size": 4, "learning_rate": 0.01,
           "hetcomp_k": 20, "discrepancy_depth": 10, "detailed_long": 10, "detailed_short": 5}
MODEL_DIR = os.path.join(os.path.dirname(recbole_hetcomp.__file__), "model", "general_recommender")


def test_the_public_api_names_the_entry_points_models_and_teacher_set():
    from recbole_hetcomp import CLDRD, RRD, HetComp, RankEnsemble, TeacherSet, load_data_and_model, run

    assert callable(run) and callable(load_data_and_model)
    assert TeacherSet is teacherset.TeacherSet
    assert {HetComp.__name__, RankEnsemble.__name__, RRD.__name__, CLDRD.__name__} <= set(recbole_hetcomp.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Hetcomp'"):
        recbole_hetcomp.Hetcomp


def test_a_saved_student_is_served_again_in_two_lines(tiny):
    from recbole.data.interaction import Interaction

    from recbole_hetcomp import load_data_and_model, run
    from recbole_hetcomp.trainer.base import plugin_trainer

    result = run(model="HetComp", dataset="tiny", config_dict=dict(tiny, **TEACHERS, **STUDENT))
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(result["checkpoint_file"])

    # The full-sort scores are the checkpoint's embeddings, and the test metrics are the run's.
    state = torch.load(result["checkpoint_file"], weights_only=False)["state_dict"]
    users = torch.as_tensor(dataset.token2id("user_id", list(dataset.field2id_token["user_id"][1:])))
    scores = model.full_sort_predict(Interaction({"user_id": users})).view(len(users), -1)
    assert torch.equal(scores, state["user_embedding.weight"][users] @ state["item_embedding.weight"].T)
    from recbole.trainer import Trainer

    tested = plugin_trainer(Trainer)(config, model).evaluate(test_data, load_best_model=False)
    assert {k: float(v) for k, v in tested.items()} == result["test_result"]


def test_settings_come_from_the_caller_never_from_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run_recbole_hetcomp.py", "--epochs=99", "--no_such_key=1"])
    assert Config(model="BPR", dataset="ml-100k")["epochs"] != 99
    # What a command line says is passed as a dict of strings, converted as RecBole converts them.
    config = Config(model="BPR", dataset="ml-100k", config_dict={"epochs": 5}, command_line={"epochs": "7", "topk": "[5,10]"})
    assert config["epochs"] == 7 and config["topk"] == [5, 10]


def test_a_command_line_token_that_is_not_a_setting_is_one_error_line(capsys):
    from recbole_hetcomp.cli import SettingsError, main, parse_settings

    assert main(["--epochs", "5"]) == 2
    assert "argument '--epochs' is not a setting: write --key=value" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="--epochs is given twice"):
        parse_settings(["--epochs=5", "--epochs=6"])
    assert parse_settings(["--model=BPR", "--eval_args={'mode': 'full'}"]) == {"model": "BPR", "eval_args": "{'mode': 'full'}"}


def test_each_trajectory_file_is_read_once_per_run(tiny, monkeypatch):
    from recbole_hetcomp import run

    reads = []
    real = teacherset.load_trajectory
    monkeypatch.setattr(teacherset, "load_trajectory", lambda path, *a, **k: reads.append(os.path.basename(path)) or real(path, *a, **k))
    config = dict(tiny, **TEACHERS, **STUDENT)
    run(model="HetComp", dataset="tiny", config_dict=config)  # records both teachers, then reads each once
    assert sorted(reads) == ["BPR.safetensors", "EASE.safetensors"]
    reads.clear()
    run(model="RRD", dataset="tiny", config_dict=dict(config, rrd_k=10, rrd_n=20))  # reuses them
    assert sorted(reads) == ["BPR.safetensors", "EASE.safetensors"]


def test_a_model_built_outside_a_run_loads_its_teachers_itself(tiny):
    from recbole_hetcomp import HetComp, TeacherSet, run

    config_dict = dict(tiny, **TEACHERS, **STUDENT)
    run(model="RankEnsemble", dataset="tiny", config_dict=config_dict)  # records the teachers
    config, (train, _, _) = split_and_model(config_dict, "HetComp", build=False)
    teachers = TeacherSet.load(config, train.dataset)
    assert teachers.names == ["BPR", "EASE"] and teachers.weak == {}
    with teachers.shared():
        assert TeacherSet.of(config, train.dataset) is teachers
    assert TeacherSet.of(config, train.dataset) is not teachers  # outside the block: read from the files
    # The default weights are chosen on validation by a run; a model built directly takes a list (or None: equal).
    with pytest.raises(ConfigError, match="validation is chosen by a run"):
        HetComp(config, train.dataset)
    config["ensemble_weights"] = None
    assert HetComp(config, train.dataset).teacher_names == ["BPR", "EASE"]


def test_no_model_file_imports_another_model_file():
    models = {f[:-3] for f in os.listdir(MODEL_DIR) if f.endswith(".py") and f != "__init__.py"}
    for name in sorted(models):
        with open(os.path.join(MODEL_DIR, name + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        others = {m for m in imported if m.startswith("recbole_hetcomp.model.general_recommender")}
        assert not others, f"{name}.py imports {others}"
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        assert len(classes) == 1 and classes[0].lower() == name, f"{name}.py holds {classes}"
