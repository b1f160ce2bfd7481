from recbole_hetcomp.model.general_recommender.cml import CML
from recbole_hetcomp.model.general_recommender.itemae import ItemAE
from recbole_hetcomp.model.general_recommender.neumf import NeuMF

__all__ = ["CML", "ItemAE", "NeuMF"]
