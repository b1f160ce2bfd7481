"""Run any RecBole or recbole-hetcomp model, RecBole-style.

    recbole-hetcomp                                    # the main job: HetComp on ml-100k (bundled, offline)
    recbole-hetcomp --model=HetComp --dataset=ml-1m    # downloaded from GroupLens the first time
    recbole-hetcomp --model=LightGCN --dataset=ml-100k --epochs=20
    recbole-hetcomp --config_files="a.yaml b.yaml" --learning_rate=0.01
    recbole-hetcomp --model=HetComp --config_files=hetcomp-paper.yaml   # a shipped protocol, by name

``python -m recbole_hetcomp`` and, in a checkout, ``python run_recbole_hetcomp.py`` are the
same command. Every ``--key=value`` overrides a config key, as in RecBole's run_recbole.py;
they are parsed here (:func:`parse_settings`) and handed to the run as a dict.
"""

import argparse
import sys

DEFAULT_MODEL = "HetComp"
DEFAULT_DATASET = "ml-100k"


class SettingsError(ValueError):
    """A command-line token that is not a ``--key=value`` setting."""


def parse_settings(argv):
    """The ``--key=value`` settings of a command line, values as typed.

    Same reading as RecBole's ``Config._load_cmd_line`` (which reads ``sys.argv``): every
    ``--key=value`` token, the value converted later by the Config. Tokens that argparse
    takes (``--model X``) are not settings; anything else is an error here, where RecBole
    only warns that it "will not be used" and trains with the defaults.

    Args:
        argv (list of str): the arguments after the program name.

    Returns:
        dict: key -> value string.

    Raises:
        SettingsError: a token that is not ``--key=value``, or one key given twice with
            different values.
    """
    settings = {}
    for token in argv:
        if not token.startswith("--") or "=" not in token:
            raise SettingsError(f"argument {token!r} is not a setting: write --key=value (e.g. --epochs=10)")
        key, value = token[2:].split("=", 1)
        if key in settings and settings[key] != value:
            raise SettingsError(f"--{key} is given twice ({settings[key]!r} and {value!r}): keep one")
        settings[key] = value
    return settings


def main(argv=None, prog=None):
    """Parse the command line, run one model, print errors as one line.

    Args:
        argv (list of str, optional): the arguments after the program name (``sys.argv[1:]``
            if None).
        prog (str, optional): the program name shown by ``--help`` (argparse's default if None).

    Returns:
        int: the exit status: 0 done, 2 a user error (printed as one line), 130 interrupted.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default=DEFAULT_MODEL, help="model name")
    parser.add_argument("--dataset", "-d", type=str, default=DEFAULT_DATASET, help="dataset name")
    parser.add_argument("--config_files", type=str, default=None,
                        help="space-separated YAML files; a bare name not in the working directory names a shipped protocol")
    parser.add_argument("--nproc", type=int, default=1, help="processes on this node (RecBole's distributed engine)")
    parser.add_argument("--ip", type=str, default="localhost", help="address of rank 0's node")
    parser.add_argument("--port", type=str, default="5678", help="port of rank 0's node")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all nodes (-1: nproc)")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank of this node's first process")
    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = parser.parse_known_args(argv)
    try:
        # Every --key=value is a setting, argparse's own flags too (as RecBole reads them);
        # what argparse left over must be one.
        parse_settings(rest)
        settings = parse_settings([a for a in argv if a.startswith("--") and "=" in a])
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        import recbole  # noqa: F401
    except ModuleNotFoundError:
        # Python >= 3.12: setup.cfg cannot require RecBole there (its ray pin has no wheel).
        print("error: RecBole is not installed: pip install --no-deps recbole==1.2.1 (see README, Install)", file=sys.stderr)
        return 2

    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.errors import HetCompError
    from recbole_hetcomp.console import interrupted_message
    from recbole_hetcomp.quick_start import run

    quiet_known_warnings()

    config_files = args.config_files.strip().split() if args.config_files else None
    try:
        run(
            model=args.model, dataset=args.dataset, config_file_list=config_files, nproc=args.nproc,
            world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset,
            command_line=settings,
        )
    except HetCompError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(), file=sys.stderr)
        return 130
    return 0
