import torch
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
    """PML's ``MultipleReducers``, with the sub-losses gathered by one ``stack``.

    ``MultipleReducers`` copies each reduced sub-loss into a zero vector (a copy and an autograd node
    apiece) before summing it; the stacked vector is the same, so is its sum. A lone sub-loss (a
    Metrix multi-similarity loss without mixed items) is handed straight to its reducer: what the
    PML twin's single reducer gives.
    """

    def forward(self, loss_dict, embeddings, labels):
        self.reset_stats()
        values = [
            (self.reducers[name] if name in self.reducers else self.default_reducer)({name: info}, embeddings, labels)
            for name, info in loss_dict.items()
        ]
        if len(values) == 1 and next(iter(loss_dict)) in self.reducers:
            return values[0]
        sub_losses = torch.stack([value if value.ndim == 0 else value.reshape(()) for value in values])
        sub_losses = sub_losses.to(embeddings.dtype)
        return self.sub_loss_reduction(sub_losses, embeddings, labels)
