from pytorch_metric_learning.reducers import BaseReducer, MultipleReducers


class WeightedReducer(BaseReducer):
    """Reduce one sub-loss with ``reducer``, then multiply it by ``weight``.

    With stats collection on, records the unweighted reduced value as ``value``, so that
    record-keeper logs each sub-loss of a Metrix loss (clean and mixed) apart.
    """

    def __init__(self, reducer: BaseReducer, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.reducer = reducer
        self.weight = weight
        self.add_to_recordable_attributes(name="weight", is_stat=False)
        self.add_to_recordable_attributes(name="value", is_stat=True)

    def forward(self, loss_dict, embeddings, labels):
        self.reset_stats()
        value = self.reducer(loss_dict, embeddings, labels)
        if self.collect_stats:
            self.value = value.item()
        return value if self.weight == 1 else self.weight * value


class SubLossReducers(MultipleReducers):
    """PML's ``MultipleReducers`` that hands a lone sub-loss straight to its reducer.

    A Metrix loss without mixed items has the sub-losses of its PML twin; when that is one
    (multi-similarity), this gives what the twin's single reducer gives, without the stacking.
    """

    def forward(self, loss_dict, embeddings, labels):
        if len(loss_dict) != 1 or next(iter(loss_dict)) not in self.reducers:
            return super().forward(loss_dict, embeddings, labels)
        self.reset_stats()
        name = next(iter(loss_dict))
        return self.reducers[name](loss_dict, embeddings, labels)
