from functools import partial
from typing import Callable, List

import torch
from pytorch_metric_learning import trainers
from pytorch_metric_learning.utils import common_functions as c_f

from .. import names
from ..distributed import DistributedMixupMiner, embed_share, gather_rows, without_parameter_gradients
from ..miners import MixupMiner
from ..mixed_batch import MixedBatch
from ..mixing import MixingPlan

class MetrixTrainer(trainers.MetricLossOnly):
    """PML's ``MetricLossOnly`` with Metrix at the input, feature or embedding level.

    Needs a :class:`~pml_metrix.MixupMiner` as ``mining_funcs["tuple_miner"]`` and a Metrix loss as
    ``loss_funcs["metric_loss"]``. The miner draws the plan on the clean embeddings; then

    - ``embedding``: the embeddings are mixed (what ``MetricLossOnly`` with the miner does);
    - ``feature``: the trunk's output is mixed and the mixes go through the embedder (for
      :func:`pml_metrix.app.models.metrix_resnet50`, the last convolutional map before pooling);
    - ``input``: the inputs are mixed and go through trunk and embedder (one extra forward).

    At the feature and input levels the mixes pass through the models as a batch of their own, so
    a BatchNorm layer there (in training mode) needs at least 2 mixes per step: draw them per anchor
    (the miner's default) or with ``num_mixes >= 2``.

    With ``keep_mixed_embeddings=True`` the mixed embeddings of each step are kept, detached, in
    ``mixed_embeddings_seen`` on the CPU (clear it when read), e.g. for
    :attr:`~pml_metrix.testers.UtilizationTester.mixed_embeddings`.

    In several processes, give it DDP-wrapped models, ``DistributedLossWrapper(loss,
    efficient=False)`` and a :class:`~pml_metrix.distributed.DistributedMixupMiner`: the plan then
    spans every process's batch, at every level (:meth:`mix`).

    Every other PML trainer feature (samplers, loss weights, gradient clippers,
    freeze_trunk_batchnorm, lr schedulers, hooks, record-keeper) is PML's, untouched. For B x C label
    sets (multi-label data) pass ``label_hierarchy_level="all"``: PML's default, 0, hands the loss and
    the miner column 0 of them alone, as class labels.
    """

    MIX_LEVELS = names.MIX_LEVELS

    def __init__(self, *args, mix_level: str = "embedding", keep_mixed_embeddings: bool = False, **kwargs):
        if mix_level not in self.MIX_LEVELS:
            raise ValueError(f"mix_level must be one of {self.MIX_LEVELS}, got {mix_level!r}")
        self.mix_level = mix_level
        self.keep_mixed_embeddings = keep_mixed_embeddings
        self.mixed_embeddings_seen: List[torch.Tensor] = []
        super().__init__(*args, **kwargs)
        if not isinstance(self.mining_funcs.get("tuple_miner"), (MixupMiner, DistributedMixupMiner)):
            raise ValueError(
                'MetrixTrainer needs mining_funcs={"tuple_miner": pml_metrix.MixupMiner(...)} (or a '
                "DistributedMixupMiner of one); pass the clean-pair miner as MixupMiner(inner_miner=...)"
            )

    def calculate_loss(self, curr_batch):
        data, labels = curr_batch
        trunk_output = self.get_trunk_output(data)
        embeddings = self.get_final_embeddings(trunk_output)
        labels = c_f.to_device(labels, embeddings)
        mixed_batch = self.mix(data, trunk_output, embeddings, labels)
        if self.keep_mixed_embeddings:
            self.mixed_embeddings_seen.append(mixed_batch.embeddings.detach().cpu())
        self.losses["metric_loss"] = self.maybe_get_metric_loss(embeddings, labels, mixed_batch)

    def mix(self, data: torch.Tensor, trunk_output: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor) -> MixedBatch:
        """The MixedBatch of the batch's inputs, trunk output and embeddings (B x ...): the miner's
        inner tuple and plan (:meth:`~pml_metrix.MixupMiner.clean_tuple`, :meth:`~pml_metrix.MixupMiner.plan`),
        mixed at ``mix_level`` (:func:`mix_at_level`) and handed to the loss.

        With a DistributedMixupMiner, over the batch of every process, in PML's gathered order
        (:func:`~pml_metrix.distributed.gather_rows`; of the inputs and trunk output only what
        ``mix_level`` mixes is gathered), for ``DistributedLossWrapper(efficient=False)``. Every
        process embeds all the feature or input mixes, its share through the (DDP) models and the
        others without parameter gradients (:func:`~pml_metrix.distributed.embed_share`): the loss
        and gradients of one process on the whole batch.
        """
        miner = self.mining_funcs["tuple_miner"]
        embed_features, embed_inputs = self.get_final_embeddings, self.compute_embeddings
        if self.mix_level == "input":  # PML's device and dtype for the inputs, as get_trunk_output gives them
            data = c_f.to_device(data, device=self.data_device, dtype=self.dtype)
        if isinstance(miner, DistributedMixupMiner):
            trunk, embedder = (without_parameter_gradients(self.models[name]) for name in ("trunk", "embedder"))
            if self.mix_level == "input":
                data = gather_rows(data)
            if self.mix_level == "feature":
                trunk_output = gather_rows(trunk_output)
            embeddings, labels = gather_rows(embeddings), gather_rows(labels)
            embed_features = partial(embed_share, embed=self.get_final_embeddings, embed_without_parameter_gradients=embedder)
            embed_inputs = partial(
                embed_share, embed=self.compute_embeddings, embed_without_parameter_gradients=lambda x: embedder(trunk(x))
            )
        indices_tuple = miner.clean_tuple(embeddings, labels)
        plan = miner.plan(embeddings, labels)
        mixed = mix_at_level(plan, self.mix_level, data, trunk_output, embeddings, embed_features, embed_inputs)
        return plan.mixed_batch(mixed, indices_tuple)


def mix_at_level(
    plan: MixingPlan,
    level: str,
    inputs: torch.Tensor,
    features: torch.Tensor,
    embeddings: torch.Tensor,
    embed_features: Callable[[torch.Tensor], torch.Tensor],
    embed_inputs: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """K x d embeddings of the plan's mixes at ``level``: mixed ``embeddings``, the embedder on
    mixed ``features`` (the trunk's output), or the whole model on mixed ``inputs``."""
    if len(plan) == 0 or level == "embedding":
        return plan.mix(embeddings)
    if level == "feature":
        return embed_features(plan.mix(features))
    return embed_inputs(plan.mix(inputs))
