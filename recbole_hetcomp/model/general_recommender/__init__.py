from recbole_hetcomp.model.general_recommender.cml import CML
from recbole_hetcomp.model.general_recommender.itemae import ItemAE
from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble

__all__ = ["CML", "ItemAE", "RankEnsemble"]
