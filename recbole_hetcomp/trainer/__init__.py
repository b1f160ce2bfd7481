from recbole_hetcomp.trainer.cldrd import CLDRDTrainer
from recbole_hetcomp.trainer.hetcomp import HetCompTrainer
from recbole_hetcomp.trainer.rankensemble import RankEnsembleTrainer

__all__ = ["CLDRDTrainer", "HetCompTrainer", "RankEnsembleTrainer"]
