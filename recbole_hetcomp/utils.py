"""Model and trainer lookup: this plugin's classes first, then RecBole's.

RecBole's own ``get_model`` only searches ``recbole.model.*`` and reports an unknown
name as ``ModuleNotFoundError: lightgbm`` (it imports the exlib package, whose optional
dependency is missing); here an unknown name is a one-line error naming the closest
known models.
"""

import difflib
import importlib
import os

import recbole.model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_hetcomp.trainer.base import plugin_trainer
from recbole_hetcomp.errors import ConfigError

PLUGIN_MODEL_PACKAGE = "recbole_hetcomp.model.general_recommender"
RECBOLE_MODEL_SUBPACKAGES = [
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
]


def _module_files(package_dir):
    return {
        name[:-3]
        for name in os.listdir(package_dir)
        if name.endswith(".py") and not name.startswith("_")
    }


def _candidate_modules(model_name):
    """Module paths that could hold ``model_name``, found on disk without importing."""
    file_name = model_name.lower()
    plugin_dir = os.path.join(os.path.dirname(__file__), "model", "general_recommender")
    if file_name in _module_files(plugin_dir):
        yield PLUGIN_MODEL_PACKAGE + "." + file_name
    recbole_dir = os.path.dirname(recbole.model.__file__)
    for sub in RECBOLE_MODEL_SUBPACKAGES:
        if file_name in _module_files(os.path.join(recbole_dir, sub)):
            yield f"recbole.model.{sub}.{file_name}"


def known_model_names():
    """Names of every model file in the plugin and in RecBole (lower-case file names)."""
    names = _module_files(os.path.join(os.path.dirname(__file__), "model", "general_recommender"))
    recbole_dir = os.path.dirname(recbole.model.__file__)
    for sub in RECBOLE_MODEL_SUBPACKAGES:
        names |= _module_files(os.path.join(recbole_dir, sub))
    return sorted(names - {"abstract_recommender", "init", "layers", "loss"})


def _closest(name, choices, n=3):
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def get_model(model_name):
    """Return the model class named ``model_name``, looking in the plugin first.

    Args:
        model_name (str): the class name, e.g. ``"HetComp"``, ``"CML"``, ``"LightGCN"``.

    Returns:
        type: the model class.

    Raises:
        ConfigError: the name is unknown (the message lists the closest known names).
    """
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError(f"model must be a model name such as BPR, got {model_name!r}")
    for module_path in _candidate_modules(model_name):
        try:
            module = importlib.import_module(module_path)
        except ImportError as err:
            raise ConfigError(
                f"model {model_name} needs the optional package '{err.name}': pip install {err.name}"
            ) from None
        if hasattr(module, model_name):
            return getattr(module, model_name)
        classes = [c for c in dir(module) if c.lower() == model_name.lower()]
        if classes:
            raise ConfigError(
                f"unknown model '{model_name}': model names are case-sensitive, use --model={classes[0]}"
            )
    suggestions = _closest(model_name, _display_names())
    hint = f"; closest known models: {', '.join(suggestions)}" if suggestions else ""
    raise ConfigError(
        f"unknown model '{model_name}'{hint} (any RecBole model or plugin model by class name)"
    )


def _display_names():
    """Known model names with their class spelling where it is cheap to know."""
    plugin = importlib.import_module(PLUGIN_MODEL_PACKAGE)
    spelled = {n.lower(): n for n in getattr(plugin, "__all__", [])}
    general = importlib.import_module("recbole.model.general_recommender")
    for name in dir(general):
        if not name.startswith("_"):
            spelled.setdefault(name.lower(), name)
    for sub in ["context_aware_recommender", "sequential_recommender", "knowledge_aware_recommender"]:
        try:
            module = importlib.import_module(f"recbole.model.{sub}")
        except ImportError:
            continue
        for name in dir(module):
            if not name.startswith("_"):
                spelled.setdefault(name.lower(), name)
    return [spelled.get(n, n) for n in known_model_names()]


def get_trainer(model_type, model_name):
    """Return the trainer class for a model: ``recbole_hetcomp.trainer.<Name>Trainer`` first,
    then RecBole's choice; either way with the plugin's base trainer behaviour (:mod:`recbole_hetcomp.trainer.base`).

    Args:
        model_type (ModelType): ``config["MODEL_TYPE"]``.
        model_name (str): ``config["model"]``.

    Returns:
        type: a trainer class taking ``(config, model)``.
    """
    plugin_trainers = importlib.import_module("recbole_hetcomp.trainer")
    trainer_class = getattr(plugin_trainers, model_name + "Trainer", None)
    if trainer_class is None:
        trainer_class = recbole_get_trainer(model_type, model_name)
    return plugin_trainer(trainer_class)


def is_writer(config):
    """Only rank 0 of a distributed run writes files (trajectories, results)."""
    return config["single_spec"] or config["local_rank"] == 0


def barrier():
    """Wait for every rank of a distributed run (a no-op in a single process)."""
    from recbole_hetcomp.compat import is_distributed

    if is_distributed():
        import torch

        torch.distributed.barrier()
