from pytorch_metric_learning.reducers import BaseReducer


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
        return self.weight * value
