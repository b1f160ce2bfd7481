"""RecBole's Config, taught to find this plugin's models and property files.

Our property files are found by :mod:`recbole_hetcomp.resources` (packaged with an installed
copy, else the checkout's ``properties/``); a bare ``--config_files`` name that is not in the
working directory names a shipped protocol (``hetcomp-paper.yaml``).

Layers, lowest priority first (RecBole's order, with ours interleaved):
RecBole ``overall.yaml`` < our ``properties/overall.yaml`` < RecBole's model YAML <
our ``properties/model/<Model>.yaml`` < dataset YAMLs (RecBole's, then ours) <
``--config_files`` < ``config_dict`` < ``command_line`` (the ``--key=value`` settings the
command line gave, parsed by :mod:`recbole_hetcomp.cli`; never read from ``sys.argv`` here).
Our overall file only changes RecBole defaults that no RecBole model or dataset file sets
(e.g. CPU-friendly evaluation batches), so a model's own defaults still win over it.
"""

import difflib
import os
import sys

import recbole
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.resources import PROPERTIES_DIR, resolve_config_file, shipped_protocols
from recbole_hetcomp.utils import get_model

RECBOLE_PROPERTIES_DIR = os.path.join(os.path.dirname(recbole.__file__), "properties")

# Keys RecBole reads that no property file defines (its distributed launcher's).
_LAUNCHER_KEYS = {"model", "dataset", "config_files", "nproc", "ip", "port", "world_size", "offset", "group_offset", "local_rank"}


class Config(RecBoleConfig):
    """RecBole's :class:`recbole.config.Config` with plugin model lookup and plugin YAML defaults.

    Args:
        model (str or type, optional): model name (plugin first, then RecBole) or class.
        dataset (str, optional): dataset name.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): overrides above the files.
        command_line (dict, optional): ``--key=value`` settings of the command line, values
            as typed (strings, converted as RecBole converts its command line); above
            ``config_dict``, and an unknown key is an error (see ``check_keys``).

    Raises:
        ConfigError: unknown model, missing or malformed YAML, missing dataset name.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, command_line=None):
        self.unknown_key_warnings = []
        # RecBole's Config reads sys.argv itself: a teacher trained inside a student's run,
        # or any run started from Python, would pick up the process's --model/--epochs.
        self.command_line = dict(command_line or {})
        super().__init__(model, dataset, config_file_list, config_dict)
        self._check_command_line_keys()

    # --- the settings a run reads -------------------------------------------------------
    # A kept result depends on the settings its run read, not on every key its property files
    # define (a protocol file sets keys for every model): see read_keys.
    def __getitem__(self, item):
        self.__dict__.setdefault("_read", set()).add(item)
        return super().__getitem__(item)

    def __contains__(self, key):
        self.__dict__.setdefault("_read", set()).add(key)
        return super().__contains__(key)

    def __getattr__(self, item):
        if "final_config_dict" in self.__dict__ and item in self.final_config_dict:
            self.__dict__.setdefault("_read", set()).add(item)
        return super().__getattr__(item)

    def read_keys(self):
        """The settings read so far (``config[key]``, ``key in config``, ``config.key``)."""
        return set(self.__dict__.get("_read", ()))

    def _load_cmd_line(self):
        return self._convert_config_dict(dict(self.command_line))

    # --- external input -------------------------------------------------------------
    def _read_yaml(self, path, what):
        if not os.path.isfile(path):
            shipped = shipped_protocols() if what == "config file" and not os.path.dirname(path) else []
            hint = f"; shipped protocols, usable by name: {', '.join(shipped)}" if shipped else ""
            raise ConfigError(f"{what} {path} does not exist: check the path (given to --config_files?){hint}")
        try:
            with open(path, "r", encoding="utf-8") as f:
                content = yaml.load(f.read(), Loader=self.yaml_loader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(
                f"{what} {path} is not valid YAML{where}: {problem}; write one `key: value` per line"
            ) from None
        if content is None:
            return {}
        if not isinstance(content, dict):
            raise ConfigError(f"{what} {path} must hold `key: value` lines, found a {type(content).__name__}")
        return content

    def _load_config_files(self, file_list):
        file_config_dict = dict()
        if isinstance(file_list, str):
            file_list = file_list.split()
        for file in file_list or []:
            file_config_dict.update(self._read_yaml(resolve_config_file(file), "config file"))
        return file_config_dict

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("no model given: pass --model=NAME (e.g. --model=BPR)")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("no dataset given: pass --dataset=NAME (e.g. --dataset=ml-100k)")
        return model, model_class, dataset

    # --- internal defaults ----------------------------------------------------------
    def _update_internal_config_dict(self, file):
        config_dict = self._read_yaml(file, "property file")
        self.internal_config_dict.update(config_dict)
        return config_dict

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        protected = set()
        for path in (
            os.path.join(RECBOLE_PROPERTIES_DIR, "model", model + ".yaml"),
            os.path.join(RECBOLE_PROPERTIES_DIR, "dataset", dataset + ".yaml"),
        ):
            if os.path.isfile(path):
                protected |= set(self._read_yaml(path, "property file"))
        ours = self._read_yaml(os.path.join(PROPERTIES_DIR, "overall.yaml"), "property file")
        self.internal_config_dict.update({k: v for k, v in ours.items() if k not in protected})
        model_file = os.path.join(PROPERTIES_DIR, "model", model + ".yaml")
        if os.path.isfile(model_file):
            self._update_internal_config_dict(model_file)
        dataset_file = os.path.join(PROPERTIES_DIR, "dataset", dataset + ".yaml")
        if os.path.isfile(dataset_file):
            keys = self._update_internal_config_dict(dataset_file)
            self.parameters["Dataset"] += [k for k in keys if k not in self.parameters["Dataset"]]

    def _init_device(self):
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        from recbole_hetcomp.compat import init_distributed_device

        gpu_id = self.final_config_dict["gpu_id"]
        self.final_config_dict["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        init_distributed_device(self.final_config_dict)

    def compatibility_settings(self):
        # RecBole's version reads np.float_ & co., gone in numpy 2; ours sets the same
        # aliases and patches scipy and pandas breaks too (see compat.py).
        from recbole_hetcomp.compat import patch_stack

        patch_stack()

    # --- checks -------------------------------------------------------------------
    def _check_command_line_keys(self):
        """An unknown ``--key`` on the command line: an error naming the closest known keys.

        Keys in ``--config_files`` and in ``config_dict`` (the Python API, and the settings a
        student's run hands its teachers, which hold the student's own keys) are not checked:
        a YAML file, or ``--check_keys=False`` (warnings only), is the way to pass a RecBole
        key that no property file defines.
        """
        known = set(self.internal_config_dict) | set(self.file_config_dict) | _LAUNCHER_KEYS
        for category in self.parameters.values():
            known |= set(category)
        own = set(self._read_yaml(os.path.join(PROPERTIES_DIR, "model", f"{self.model}.yaml"), "property file")) \
            if os.path.isfile(os.path.join(PROPERTIES_DIR, "model", f"{self.model}.yaml")) else set()
        unknown = [k for k in self.cmd_config_dict if k not in known]
        for key in dict.fromkeys(unknown):
            close = close_keys(key, known, own)
            hint = f"did you mean {' or '.join(f'--{k}' for k in close)}?" if close else "check the spelling"
            self.unknown_key_warnings.append(f"--{key} is not a known setting ({hint})")
        if self.unknown_key_warnings and self.final_config_dict.get("check_keys", True) is not False:
            raise ConfigError(
                self.unknown_key_warnings[0]
                + "; a RecBole key no property file defines can go in a --config_files YAML, or pass --check_keys=False"
            )
        for message in self.unknown_key_warnings:
            # The logger is not set up yet (it needs this config); stderr is always seen.
            print(f"WARNING: {message}; passed on unchecked (check_keys=False)", file=sys.stderr)


def resolve_settings(model, dataset, config_file_list=None, config_dict=None):
    """What a run with these arguments would be configured with, without running it:
    :func:`recbole_hetcomp.checks.resolved_settings` of its Config (property files and model
    defaults as they are now). ``config_dict`` is left as given (RecBole converts values in
    place), and so is ``CUDA_VISIBLE_DEVICES`` (RecBole's Config sets it, and processes started
    afterwards would inherit it); call it from one thread at a time."""
    from recbole_hetcomp.checks import resolved_settings

    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        return resolved_settings(Config(model, dataset, config_file_list, dict(config_dict or {})))
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def close_keys(key, known, preferred=(), n=3):
    """The known keys a mistyped ``key`` most likely meant, best first.

    Spelling (difflib, case-insensitive) first; then keys that hold ``key`` as one of their
    ``_``-separated words (``K`` -> ``hetcomp_k``), the running model's own keys first.
    """
    lower = {k.lower(): k for k in known}
    found = [lower[m] for m in difflib.get_close_matches(key.lower(), sorted(lower), n=n, cutoff=0.7)]
    words = sorted((k for k in known if key.lower() in k.lower().split("_") and k not in found),
                   key=lambda k: (k not in preferred, k))
    return (found + words)[:n]
