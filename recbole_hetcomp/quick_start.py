"""One entry point for every model: ``run_recbole_hetcomp``.

For an ordinary RecBole model (or a plugin baseline such as CML) this does what RecBole's
``run_recbole`` does (RecBole's own quick_start module is not imported: it imports ray,
which breaks on current setuptools).
"""

import json
import os
import sys
import tempfile
from logging import getLogger
from time import time

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_flops, init_logger, init_seed, set_color

from recbole_hetcomp.config import Config
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.utils import get_model, get_trainer

# Settings copied into result files so a row can be traced to its run.
_ESSENTIAL_KEYS = [
    "seed", "epochs", "train_batch_size", "learning_rate", "embedding_size", "eval_args",
    "valid_metric", "topk", "metrics", "data_path",
]


def check_dataset_files(config):
    """Fail early, in one line, when the dataset's atomic files are not where RecBole looks.

    Args:
        config (Config): the run's config (``data_path`` already joined with the dataset name).

    Raises:
        ConfigError: the ``.inter`` file (or the benchmark split files) is missing.
    """
    data_path, name = config["data_path"], config["dataset"]
    benchmark = config["benchmark_filename"]
    wanted = [f"{name}.{part}.inter" for part in benchmark] if benchmark else [f"{name}.inter"]
    missing = [f for f in wanted if not os.path.isfile(os.path.join(data_path, f))]
    if missing:
        raise ConfigError(
            f"dataset '{name}' not found: no {os.path.join(data_path, missing[0])}; put RecBole atomic "
            f"files there, point --data_path at the folder that holds {name}/, or convert a GroupLens "
            f"archive with `python -m recbole_hetcomp.data.movielens ARCHIVE --data_path=DIR`"
        )


def check_result_file(path):
    """Fail before training, not after, when results could not be written."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"result_file folder {folder} does not exist: create it or choose another --result_file")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"result_file folder {folder} is not writable: choose another --result_file")


def write_json_atomic(path, payload):
    """Write JSON so that readers see the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def config_essentials(config):
    return {k: config[k] for k in _ESSENTIAL_KEYS if k in config}


def _plain(result):
    return {k: float(v) for k, v in (result or {}).items()}


def run_recbole_hetcomp(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train and evaluate one model the RecBole way, with the plugin's lookup and defaults.

    Args:
        model (str, optional): model name (plugin first, then RecBole). Default: from the config.
        dataset (str, optional): dataset name. Default: from the config.
        config_file_list (list of str, optional): YAML property files.
        config_dict (dict, optional): overrides above the files.
        saved (bool): keep the best checkpoint and reload it for the test.

    Returns:
        dict: ``model``, ``dataset``, ``best_valid_score``, ``valid_result``, ``test_result``,
        ``wall_time_s`` and the config essentials (the same content as ``result_file``).
    """
    start = time()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    check_result_file(config["result_file"])
    check_dataset_files(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    for message in config.unknown_key_warnings:
        logger.warning(message)
    logger.info(sys.argv)
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "valid_result": _plain(best_valid_result),
        "test_result": _plain(test_result),
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(time() - start, 3),
        "config": config_essentials(config),
    }
    if config["result_file"]:
        write_json_atomic(config["result_file"], result)
        logger.info(f"results written to {config['result_file']}")
    return result
