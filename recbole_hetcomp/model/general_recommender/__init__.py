from recbole_hetcomp.model.general_recommender.cldrd import CLDRD
from recbole_hetcomp.model.general_recommender.cml import CML
from recbole_hetcomp.model.general_recommender.hetcomp import HetComp
from recbole_hetcomp.model.general_recommender.itemae import ItemAE
from recbole_hetcomp.model.general_recommender.neumf import NeuMF
from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble
from recbole_hetcomp.model.general_recommender.rrd import RRD

__all__ = ["CLDRD", "CML", "HetComp", "ItemAE", "NeuMF", "RankEnsemble", "RRD"]
