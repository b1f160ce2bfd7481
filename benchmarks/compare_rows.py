"""What the HetComp comparison runs: its rows, the scheduler that computes them, the timings.

Every row is one call of ``recbole_hetcomp.quick_start.run_recbole_hetcomp`` in its own fresh
process, and leaves ``<work>/<row>.json`` (its result, plus the row's overrides, wall time
and peak memory) or, when it fails, ``<work>/<row>.error.txt`` (its traceback). A row whose
JSON exists is reused. After the rows, :func:`measure` times every model back to back in
one process and :func:`write_measurements` keeps those timings in ``<work>/measurements.json``,
so that ``benchmarks/compare_report.py`` builds the report from the work folder alone.

The teachers are recorded once, by one process, before any other row starts: two rows that
each found no trajectory would each train and record the same teachers into the same folder.
"""

import copy
import json
import os
import platform
import resource
import signal
import sys
import time
import traceback
from collections import namedtuple
from datetime import date
from multiprocessing import get_context
from multiprocessing.connection import wait

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

TEACHERS_ROW = "Teachers and ensemble"
WEIGHTED_ROW = "Ensemble, weights chosen on validation"
# (row name, model, overrides); every student row gets --set on top of the protocol.
KD_ROWS = [
    ("HetComp", "HetComp", {}),
    ("HetComp, final checkpoints only (no DKC)", "HetComp", {"hetcomp_checkpoints": "final"}),
    ("HetComp, overall loss only", "HetComp", {"akt_mode": "overall"}),
    ("HetComp, detailed loss only", "HetComp", {"akt_mode": "detailed"}),
    ("RRD", "RRD", {}),
    ("CL-DRD", "CLDRD", {}),
]
MEASUREMENTS = "measurements.json"
INVOCATIONS = "invocations.json"

# needs_teachers: the row reads the teachers' trajectories (recorded by TEACHERS_ROW).
Row = namedtuple("Row", ["model", "config", "needs_teachers"])


def settings(data_path, trajectory_dir, threads, sets):
    """The rows' shared settings, and the students' (the shared ones plus every ``--set``).

    Args:
        data_path (str): folder holding the dataset.
        trajectory_dir (str): folder of the teachers' trajectory files.
        threads (int): torch threads per row (0: torch's default).
        sets (list of str): ``KEY=VALUE`` items for the student rows; numbers, lists, dicts
            and booleans are read as JSON, anything else is a string.

    Returns:
        tuple: (base config dict, student config dict).
    """
    base = {
        "data_path": os.path.abspath(data_path),
        "trajectory_dir": os.path.abspath(trajectory_dir),
        "show_progress": False,
        "state": "WARNING",
    }
    if threads:
        base["torch_num_threads"] = threads
    # The students learn the equal-weight ensemble, as the paper and as these rows were first
    # measured (a work folder's existing rows are reused); `--set ensemble_weights=validation`
    # gives every student the validation-weighted one, the models' default.
    student = dict(base, ensemble_weights=None)
    for item in sets:
        key, _, value = item.partition("=")
        student[key] = json.loads(value) if value[:1] in "[{0123456789-" or value in ("true", "false") else value
    return base, student


def plan(base, student, ease_weights, lrs):
    """Every row of the comparison, in the report's order.

    Args:
        base (dict): settings of the teachers, ensembles and EASE (the protocol's own).
        student (dict): settings of the student rows (``base`` plus ``--set``).
        ease_weights (list of str): EASE's L2 weights, one row each.
        lrs (list of str): the no-KD student's learning rates, one row each.

    Returns:
        dict: row name -> :class:`Row`.
    """
    rows = {
        TEACHERS_ROW: Row("RankEnsemble", dict(base), True),
        WEIGHTED_ROW: Row("RankEnsemble", dict(base, ensemble_weights="validation"), True),
    }
    for name, model, overrides in KD_ROWS:
        rows[name] = Row(model, dict(student, **overrides), True)
    for w in ease_weights:
        rows[f"EASE reg_weight {w}"] = Row("EASE", dict(base, reg_weight=float(w)), False)
    size = student.get("embedding_size", 6)
    for lr in lrs:
        rows[f"no-KD student BPR d{size} lr {lr}"] = Row(
            "BPR", dict(student, embedding_size=size, learning_rate=float(lr)), False)
    return rows


def select(rows, only):
    """The rows ``--only`` names (all rows when it is empty).

    A word that is a row's whole name picks that row only ("HetComp"), else every row
    containing it ("no-KD"). The teachers the selected rows need are not dropped:
    :func:`run_rows` records them first whatever the selection.
    """
    words = [w for w in only.split(",") if w]
    if not words:
        return list(rows)
    return [n for n in rows if any(w == n or (w not in rows and w in n) for w in words)]


def row_file(work, name):
    keep = "".join(c if c.isalnum() or c in "-." else "_" for c in name)
    return os.path.join(work, "_".join(filter(None, keep.split("_"))) + ".json")


def error_file(work, name):
    return row_file(work, name)[: -len(".json")] + ".error.txt"


def load_row(work, name):
    with open(row_file(work, name), encoding="utf-8") as f:
        return json.load(f)


def write_json(path, payload):
    from recbole_hetcomp.fileio import atomic_write

    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)

    atomic_write(path, dump)


def teacher_files(work, dataset):
    """The trajectory files the finished teachers row recorded (from its result JSON)."""
    from recbole_hetcomp.trajectory.store import trajectory_path

    done = load_row(work, TEACHERS_ROW)
    trajectory_dir = done["row_overrides"]["trajectory_dir"]
    return [trajectory_path(trajectory_dir, dataset, r["name"]) for r in done["rows"][:-1]]


def run_row(name, row, dataset, files, work, threads):
    """One row in this (fresh) process; returns its result JSON path."""
    import torch

    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.quick_start import run_recbole_hetcomp

    quiet_known_warnings()
    if threads:
        torch.set_num_threads(threads)
    os.chdir(work)  # RecBole writes log/, saved/ and log_tensorboard/ here
    path = row_file(work, name)
    start = time.time()
    try:
        result = run_recbole_hetcomp(model=row.model, dataset=dataset, config_file_list=files,
                                     config_dict=dict(row.config, result_file=path + ".part"))
        result.update(
            row_name=name,
            row_overrides=row.config,
            row_started_at=round(start, 3),  # Unix time: the order of rows can be checked afterwards
            row_wall_time_s=round(time.time() - start, 1),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            torch_threads=torch.get_num_threads(),
        )
        write_json(path, result)
        if os.path.exists(path + ".part"):
            os.remove(path + ".part")
    finally:
        _unlock(path)
    return path


def run_rows(rows, selected, jobs, dataset, files, work, threads):
    """Compute the selected rows that have no result yet: the teachers first, then the rest.

    When a row to compute reads teachers and the teachers row has no result (or the
    trajectory files it recorded are gone), the teachers row runs first, alone, whether
    ``selected`` names it or not: it records every teacher once. Only then do the other rows
    run, ``jobs`` at a time. Each row runs in its own fresh process (not a process pool: a
    pool's dead worker breaks the pool and takes the other running rows with it). A row that
    fails is reported at once, in one line, and the others go on; rows that need it are not
    started.

    Args:
        rows (dict): every row, as :func:`plan` returns them.
        selected (list of str): the rows wanted.
        jobs (int): rows run at once.
        dataset (str): dataset name.
        files (list of str): YAML property files.
        work (str): folder of the rows' result files.
        threads (int): torch threads per row (0: torch's default).

    Returns:
        tuple: names of the rows computed, {failed row: last line of its error}, and the
        names of rows not run because a row they need failed.
    """
    for name in selected:
        _check_reusable(rows, name, work, dataset, files)
    todo = [n for n in selected if not os.path.exists(row_file(work, n))]
    if not todo:
        return [], {}, []
    first, again = [], False
    if any(rows[n].needs_teachers for n in todo):
        _check_reusable(rows, TEACHERS_ROW, work, dataset, files)
        if not os.path.exists(row_file(work, TEACHERS_ROW)):
            first = [TEACHERS_ROW]  # selected or not: the rows to compute need its teachers
        elif not all(os.path.exists(p) for p in teacher_files(work, dataset)):
            first, again = [TEACHERS_ROW], True
    rest = [n for n in todo if n not in first]
    if first:
        why = "its teachers are gone: re-recording them" if again else "it records the teachers"
        print(f"computing {TEACHERS_ROW} first, alone ({why}), "
              f"then {len(rest)} rows, {jobs} at a time: {', '.join(rest)}", flush=True)
    else:
        print(f"computing {len(rest)} rows, {jobs} at a time: {', '.join(rest)}", flush=True)
    scheduler = _Scheduler(rows, dataset, files, work, threads)
    try:
        scheduler.run(first, 1, again)
        scheduler.run(rest, jobs)
    finally:
        scheduler.stop()
    return scheduler.computed, scheduler.failed, scheduler.blocked


def _check_reusable(rows, name, work, dataset, files):
    """Exit with one line if ``name``'s result JSON exists but was computed with other settings:
    other overrides, or the same overrides resolving to others today (an edited property file
    or model default)."""
    from recbole_hetcomp.checks import kept_result_difference
    from recbole_hetcomp.config import resolve_settings

    path = row_file(work, name)
    if os.path.exists(path):
        done = load_row(work, name)
        if done.get("row_overrides", rows[name].config) != rows[name].config:
            sys.exit(f"{path} was computed with other settings ({done.get('row_overrides')}): "
                     f"delete it to recompute, or use another --work folder")
        differs = kept_result_difference(done, resolve_settings(rows[name].model, dataset, files, rows[name].config))
        if differs:
            key, was, now = differs
            sys.exit(f"{path} was computed with {key}={was!r}; the row now runs with {key}={now!r} (a property file or "
                     f"model default changed): delete it to recompute, or use another --work folder")


class _Scheduler:
    """Starts rows in fresh processes, at most ``limit`` at once, and reports each as it ends."""

    def __init__(self, rows, dataset, files, work, threads):
        self.rows, self.dataset, self.files, self.work, self.threads = rows, dataset, files, work, threads
        self.context = get_context("spawn")
        self.running, self.computed, self.elsewhere, self.failed, self.blocked = {}, [], [], {}, []

    def run(self, names, limit, again=False):
        pending = list(names)
        while pending or self.running:
            while pending and len(self.running) < limit:
                self._start(pending.pop(0), again)
            if self.running:
                self._collect()

    def _start(self, name, again):
        row = self.rows[name]
        path = row_file(self.work, name)
        if os.path.exists(path) and not again:
            return  # another invocation finished it meanwhile
        if row.needs_teachers and name != TEACHERS_ROW:
            if TEACHERS_ROW in self.failed or TEACHERS_ROW in self.blocked:
                self.blocked.append(name)
                print(f"not run: {name} (needs {TEACHERS_ROW}, which failed)", flush=True)
                return
            if TEACHERS_ROW in self.elsewhere:
                self.elsewhere.append(name)
                print(f"skipped: {name} (its teachers are being recorded by another invocation; if none is "
                      f"running, delete {row_file(self.work, TEACHERS_ROW)}.lock)", flush=True)
                return
        if not _lock(path):
            self.elsewhere.append(name)
            print(f"skipped: {name} (being computed by another invocation; if none is running, "
                  f"delete {path}.lock)", flush=True)
            return
        if os.path.exists(error_file(self.work, name)):
            os.remove(error_file(self.work, name))  # from an earlier invocation
        process = self.context.Process(target=_row_process, name=name,
                                       args=(name, row, self.dataset, self.files, self.work, self.threads))
        process.start()
        self.running[process.sentinel] = (name, process)

    def _collect(self):
        for sentinel in wait(list(self.running)):
            name, process = self.running.pop(sentinel)
            process.join()
            if process.exitcode == 0:
                self.computed.append(name)
                print(f"done: {name}", flush=True)
            else:
                self.failed[name] = _failure_line(process.exitcode, error_file(self.work, name))
                print(f"failed: {name}: {self.failed[name]}", flush=True)
                _unlock(row_file(self.work, name))  # a killed row could not remove its own lock

    def stop(self):
        """This process is stopping (normally, or on Ctrl-C): so are its rows."""
        for name, process in self.running.values():
            process.join(timeout=5)  # after Ctrl-C each row stops by itself and removes its lock
            if process.is_alive():
                process.terminate()
                process.join()
            _unlock(row_file(self.work, name))
        self.running = {}


def _row_process(name, row, dataset, files, work, threads):
    """A row's own process: run it; on any failure keep its traceback and exit with status 1."""
    try:
        run_row(name, row, dataset, files, work, threads)
    except BaseException:
        text = traceback.format_exc()
        path = error_file(work, name)
        with open(path + ".part", "w") as f:
            f.write(text)
        os.replace(path + ".part", path)
        sys.exit(1)


def _failure_line(exitcode, error_path):
    """The last line of a failed row's traceback, or how its process died."""
    if os.path.exists(error_path):
        lines = [line for line in open(error_path).read().splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
    if exitcode is not None and exitcode < 0:
        signame = signal.Signals(-exitcode).name
        return f"its process was killed by {signame}" + (" (out of memory?)" if signame == "SIGKILL" else "")
    return f"its process exited with status {exitcode} and left no error"


def failure_message(failed, blocked, work):
    """The one line the command exits with when rows failed."""
    return (f"{len(failed)} row(s) failed: {'; '.join(f'{n}: {e}' for n, e in failed.items())}"
            + (f"; not run, as a row they need failed: {'; '.join(blocked)}" if blocked else "")
            + f". Each error is above (tracebacks in {work}/<row>.error.txt); finished rows are kept, "
            "so a rerun computes only what is missing")


def _unlock(path):
    if os.path.exists(path + ".lock"):
        os.remove(path + ".lock")


def _lock(path):
    """Claim a row for this invocation: several invocations may share one --work folder."""
    try:
        fd = os.open(path + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def log_invocation(work, wall, computed, failed, jobs, threads):
    """Append this invocation to ``<work>/invocations.json`` (the report sums their wall time)."""
    path = os.path.join(work, INVOCATIONS)
    invocations = json.load(open(path)) if os.path.exists(path) else []
    invocations.append({"date": str(date.today()), "wall_time_s": round(wall, 1), "rows_computed": computed,
                        "rows_failed": list(failed), "jobs": jobs, "threads": threads})
    write_json(path, invocations)
    return invocations


def measure(rows, present, dataset, files, base, threads, work):
    """Everything the report needs beyond the rows' own results, measured in this process.

    Every model is loaded from its checkpoint and timed back to back (full-sort inference,
    then one training epoch of each student); the machine and the teachers' trajectory
    files are described.

    Args:
        rows (dict): every row, as :func:`plan` returns them.
        present (list of str): the rows that have a result JSON.
        dataset (str): dataset name.
        files (list of str): YAML property files.
        base (dict): the shared settings (:func:`settings`).
        threads (int): torch threads (0: torch's default).
        work (str): folder of the rows' result files.

    Returns:
        dict: ``inference``, ``epochs``, ``trajectories``, ``machine``, ``date``.
    """
    import torch

    from recbole_hetcomp.trajectory.store import read_metadata

    results = {name: load_row(work, name) for name in present}
    no_kd = [n for n in present if rows[n].model == "BPR"]
    students = [n for n, _, _ in KD_ROWS if n in results] + [max(no_kd, key=lambda n: results[n]["best_valid_score"])]
    inference = time_inference_back_to_back(results, dataset, files, base, threads, work)
    epochs = time_epochs_back_to_back(results, students, dataset, files, threads)
    trajectories = []
    for path in teacher_files(work, dataset):
        meta = read_metadata(path)
        trajectories.append({"file": path, "bytes": os.path.getsize(path),
                             "model": meta.get("teacher_config", {}).get("model"),
                             "recording_time_s": meta.get("recording_time_s"),
                             "train_time_s": meta.get("train_time_s")})
    machine = {"arch": platform.machine(), "processor": platform.processor() or "unknown CPU",
               "cores": os.cpu_count(), "torch": torch.__version__}
    return {"date": str(date.today()), "machine": machine, "inference": inference, "epochs": epochs,
            "trajectories": trajectories}


def write_measurements(work, measurements):
    write_json(os.path.join(work, MEASUREMENTS), measurements)


def time_inference_back_to_back(results, dataset, files, base, threads, work):
    """Full-sort top-K seconds for every model, loaded from its checkpoint, in this process.

    Teachers come from their trajectory files' checkpoints; the ensemble costs every
    teacher plus its aggregation (a RankEnsemble over the stored lists).
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.compat import init_logger, load_own_checkpoint, quiet_known_warnings
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble
    from recbole_hetcomp.trajectory.recorder import full_sort_inference_time
    from recbole_hetcomp.trajectory.store import read_metadata
    from recbole_hetcomp.utils import get_model

    quiet_known_warnings()
    if threads:
        torch.set_num_threads(threads)
    config = Config(model="RankEnsemble", dataset=dataset, config_file_list=files, config_dict=base)
    init_seed(config["seed"], config["reproducibility"])  # the split is random: same seed, same split as the rows
    init_logger(config)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    train_dataset = train_data.dataset
    k = max(config["topk"])

    def timed(checkpoint_file):
        # Result files name checkpoints as their run saw them: relative to the work folder.
        checkpoint = load_own_checkpoint(os.path.join(work, checkpoint_file), "cpu")
        model_config = checkpoint["config"]
        model_config["device"] = torch.device("cpu")
        model = get_model(model_config["model"])(model_config, train_dataset)
        model.load_state_dict(checkpoint["state_dict"])
        model.load_other_parameter(checkpoint.get("other_parameter"))
        model.eval()
        return full_sort_inference_time(model, train_dataset, k, config["eval_batch_size"])

    times = {}
    teachers = {}
    for path in sorted(_trajectory_files(config)):
        meta = read_metadata(path)
        if meta.get("checkpoint_file") and os.path.exists(meta["checkpoint_file"]):
            teachers[os.path.basename(path).rsplit(".", 1)[0]] = timed(meta["checkpoint_file"])
    times.update({f"teacher {n}": t for n, t in teachers.items()})
    ensemble = RankEnsemble(config, train_dataset)
    times["ensemble aggregation"] = full_sort_inference_time(ensemble, train_dataset, k, config["eval_batch_size"])
    for name, result in results.items():
        if result.get("model") != "RankEnsemble" and result.get("checkpoint_file"):
            times[name] = timed(result["checkpoint_file"])
    return {"seconds": times, "threads": torch.get_num_threads(),
            "teachers_complete": len(teachers) == len(results[TEACHERS_ROW]["rows"]) - 1}


def time_epochs_back_to_back(results, names, dataset, files, threads):
    """Seconds of one training epoch of each student, run one after another in this process.

    The rows' own epoch times were measured while other rows ran beside them; these are
    measured on a machine this process has to itself, so their ratios compare.
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.config import Config
    from recbole_hetcomp.utils import get_trainer

    if threads:
        torch.set_num_threads(threads)
    seconds, shared = {}, None
    for name in names:
        overrides = dict(results[name].get("row_overrides") or {}, state="WARNING", epochs=1)
        config = Config(model=results[name]["model"], dataset=dataset, config_file_list=files,
                        config_dict=overrides)
        if config["ensemble_weights"] == "validation":
            # the weights that row's run chose (teacher -> weight, in the teachers' order)
            config["ensemble_weights"] = list(results[name]["ensemble_weights"].values())
        init_seed(config["seed"], config["reproducibility"])
        if shared is None:
            shared = create_dataset(config)  # the same interactions for every student
        train_data, _, _ = data_preparation(config, copy.deepcopy(shared))  # building consumes a dataset
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data.dataset)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        start = time.perf_counter()
        trainer._train_epoch(train_data, 0)  # epoch 0: before any DKC step, in stage 1 unless detailed-only
        seconds[name] = round(time.perf_counter() - start, 4)
        print(f"one epoch of {name}: {seconds[name]} s", flush=True)
    return {"seconds": seconds, "threads": torch.get_num_threads()}


def _trajectory_files(config):
    from recbole_hetcomp.trajectory.store import trajectory_path
    from recbole_hetcomp.trajectory.teacherset import parse_teachers

    return [trajectory_path(config["trajectory_dir"], config["dataset"], name)
            for name, _, _ in parse_teachers(config["teachers"])]
