from .metrix_trainer import MetrixTrainer

__all__ = ["MetrixTrainer"]
