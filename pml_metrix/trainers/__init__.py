from .metrix_trainer import MetrixTrainer, mix_at_level

__all__ = ["MetrixTrainer", "mix_at_level"]
