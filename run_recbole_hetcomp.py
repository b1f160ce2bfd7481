"""Run any RecBole or recbole-hetcomp model from a checkout, RecBole-style.

    python run_recbole_hetcomp.py                      # the main job: HetComp on ml-100k (bundled, offline)
    python run_recbole_hetcomp.py --model=HetComp --dataset=ml-1m   # downloaded from GroupLens the first time
    python run_recbole_hetcomp.py --model=LightGCN --dataset=ml-100k --epochs=20
    python run_recbole_hetcomp.py --config_files="a.yaml b.yaml" --learning_rate=0.01

The same command as ``recbole-hetcomp`` and ``python -m recbole_hetcomp`` (installed);
the argument parsing lives in :mod:`recbole_hetcomp.cli`. Every ``--key=value`` overrides
a config key, as in RecBole's run_recbole.py.
"""

import sys

from recbole_hetcomp.cli import main

if __name__ == "__main__":
    sys.exit(main())
