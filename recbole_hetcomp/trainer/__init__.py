from recbole_hetcomp.trainer.hetcomp import HetCompTrainer

__all__ = ["HetCompTrainer"]
