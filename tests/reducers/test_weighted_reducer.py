import torch
from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer, MultipleReducers

import pml_metrix
from pml_metrix.reducers import WeightedReducer


def test_weighted_reducer_scales_after_reduction_and_records_the_unweighted_value():
    reducer = WeightedReducer(AvgNonZeroReducer(), weight=0.5, collect_stats=True)
    losses = torch.tensor([0.0, 2.0, 4.0])
    info = {"loss": {"losses": losses, "indices": torch.arange(3), "reduction_type": "element"}}
    assert reducer(info, torch.zeros(3, 2), None).item() == 1.5  # 0.5 * mean of the non-zero terms
    assert reducer.value == 3.0


def test_user_multiple_reducers_are_copied_and_completed():
    user = MultipleReducers({"loss": AvgNonZeroReducer()})
    loss_fn = pml_metrix.MetrixMSLoss(reducer=user, mix_weight=0.3)
    assert set(loss_fn.reducer.reducers) == {"loss", "mixed_loss"}
    assert isinstance(loss_fn.reducer.reducers["loss"].reducer, AvgNonZeroReducer)
    assert isinstance(loss_fn.reducer.reducers["mixed_loss"].reducer, MeanReducer)
    assert loss_fn.reducer.reducers["mixed_loss"].weight == 0.3
    assert set(user.reducers) == {"loss"} and not isinstance(user.reducers["loss"], WeightedReducer)


def test_a_plain_reducer_serves_every_sub_loss():
    loss_fn = pml_metrix.MetrixContrastiveLoss(reducer=MeanReducer())
    names = {"pos_loss", "neg_loss", "mixed_pos_loss", "mixed_neg_loss"}
    assert set(loss_fn.reducer.reducers) == names
    assert all(isinstance(r.reducer, MeanReducer) for r in loss_fn.reducer.reducers.values())
