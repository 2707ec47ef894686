from .weighted_reducer import SubLossReducers, WeightedReducer

__all__ = ["SubLossReducers", "WeightedReducer"]
