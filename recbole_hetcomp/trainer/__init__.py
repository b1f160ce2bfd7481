from recbole_hetcomp.trainer.hetcomp import HetCompTrainer
from recbole_hetcomp.trainer.rankensemble import RankEnsembleTrainer

__all__ = ["HetCompTrainer", "RankEnsembleTrainer"]
