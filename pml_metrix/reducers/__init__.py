from .weighted_reducer import WeightedReducer

__all__ = ["WeightedReducer"]
