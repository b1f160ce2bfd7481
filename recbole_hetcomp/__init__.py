"""recbole-hetcomp: HetComp (Kang et al., WWW 2023) and its baselines as a RecBole plugin.

The public API::

    from recbole_hetcomp import run, load_data_and_model
    result = run(model="HetComp", dataset="ml-100k", config_dict={"epochs": 50})
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(result["checkpoint_file"])

* :func:`run` / :func:`run_recbole_hetcomp`: train and evaluate one model (any RecBole
  model or one of this plugin's), recording or reusing the teachers it learns from.
* :func:`load_data_and_model`: a saved checkpoint back, with its data split, for serving.
* The models: :class:`HetComp` (the student), :class:`RankEnsemble` (the teachers'
  ensemble), the distillation baselines :class:`RRD` and :class:`CLDRD`, and the teacher
  models RecBole lacks: :class:`CML`, :class:`ItemAE`, :class:`NeuMF`.
* :class:`TeacherSet`: the teachers' recorded trajectories, loaded once.
* :func:`get_model` / :func:`get_trainer`: lookup, this plugin first, then RecBole.

Names are imported on first use: ``import recbole_hetcomp`` alone does not import RecBole
or torch (the command line prints its help and its install hints without them).
"""

import importlib

_PUBLIC = {
    "run": "recbole_hetcomp.quick_start",
    "run_recbole_hetcomp": "recbole_hetcomp.quick_start",
    "load_data_and_model": "recbole_hetcomp.quick_start",
    "Config": "recbole_hetcomp.config",
    "TeacherSet": "recbole_hetcomp.trajectory.teacherset",
    "get_model": "recbole_hetcomp.utils",
    "get_trainer": "recbole_hetcomp.utils",
    "HetComp": "recbole_hetcomp.model.general_recommender.hetcomp",
    "RankEnsemble": "recbole_hetcomp.model.general_recommender.rankensemble",
    "RRD": "recbole_hetcomp.model.general_recommender.rrd",
    "CLDRD": "recbole_hetcomp.model.general_recommender.cldrd",
    "CML": "recbole_hetcomp.model.general_recommender.cml",
    "ItemAE": "recbole_hetcomp.model.general_recommender.itemae",
    "NeuMF": "recbole_hetcomp.model.general_recommender.neumf",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'recbole_hetcomp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
