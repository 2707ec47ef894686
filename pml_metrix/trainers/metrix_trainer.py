from typing import Callable, List, Union

import torch
from pytorch_metric_learning import trainers
from pytorch_metric_learning.utils import common_functions as c_f

from ..distributed import DistributedMixupMiner, embed_share, gather_rows, without_parameter_gradients
from ..miners import MixupMiner
from ..mixed_batch import MixedBatch
from ..mixing import MixingPlan

MIX_LEVELS = ("input", "feature", "embedding")


class MetrixTrainer(trainers.MetricLossOnly):
    """PML's ``MetricLossOnly`` with Metrix at the input, feature or embedding level.

    Needs a :class:`~pml_metrix.MixupMiner` as ``mining_funcs["tuple_miner"]`` and a Metrix loss as
    ``loss_funcs["metric_loss"]``. The miner draws the plan on the clean embeddings; then

    - ``embedding``: the embeddings are mixed (what ``MetricLossOnly`` with the miner does);
    - ``feature``: the trunk's output is mixed and the mixes go through the embedder (for
      :func:`pml_metrix.models.metrix_resnet50`, the last convolutional map before pooling);
    - ``input``: the inputs are mixed and go through trunk and embedder (one extra forward).

    With ``keep_mixed_embeddings=True`` the mixed embeddings of each step are kept, detached, in
    ``mixed_embeddings_seen`` (clear it when read), e.g. for
    :attr:`~pml_metrix.testers.UtilizationTester.mixed_embeddings`.

    In several processes, give it DDP-wrapped models, ``DistributedLossWrapper(loss,
    efficient=False)`` and a :class:`~pml_metrix.distributed.DistributedMixupMiner`: the plan then
    spans every process's batch, at every level (:meth:`mix_across_processes`).

    Every other PML trainer feature (samplers, loss weights, gradient clippers,
    freeze_trunk_batchnorm, lr schedulers, hooks, record-keeper) is PML's, untouched.
    """

    def __init__(self, *args, mix_level: str = "embedding", keep_mixed_embeddings: bool = False, **kwargs):
        if mix_level not in MIX_LEVELS:
            raise ValueError(f"mix_level must be one of {MIX_LEVELS}, got {mix_level!r}")
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
        miner = self.mining_funcs["tuple_miner"]
        trunk_output = self.get_trunk_output(data)
        embeddings = self.get_final_embeddings(trunk_output)
        labels = c_f.to_device(labels, embeddings)
        if isinstance(miner, DistributedMixupMiner):
            mixed_batch = self.mix_across_processes(miner, data, trunk_output, embeddings, labels)
        else:
            mixed_batch = self.mix(
                miner, data, trunk_output, embeddings, labels, self.get_final_embeddings, self.compute_embeddings
            )
        self.losses["metric_loss"] = self.maybe_get_metric_loss(embeddings, labels, mixed_batch)

    def mix(
        self,
        miner: Union[MixupMiner, DistributedMixupMiner],
        inputs: torch.Tensor,
        features: torch.Tensor,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        embed_features: Callable[[torch.Tensor], torch.Tensor],
        embed_inputs: Callable[[torch.Tensor], torch.Tensor],
    ) -> MixedBatch:
        """The mixed batch of the miner's plan over a batch of B items (B x d ``embeddings``, B
        ``labels``), mixed at ``mix_level`` (:func:`mix_at_level`), with the inner miner's tuple."""
        indices_tuple = None if miner.inner_miner is None else miner.inner_miner(embeddings, labels)
        plan = miner.plan(embeddings, labels)
        mixed_embeddings = mix_at_level(plan, self.mix_level, inputs, features, embeddings, embed_features, embed_inputs)
        if self.keep_mixed_embeddings:
            self.mixed_embeddings_seen.append(mixed_embeddings.detach())
        return plan.mixed_batch(mixed_embeddings, indices_tuple)

    def mix_across_processes(
        self,
        miner: DistributedMixupMiner,
        data: torch.Tensor,
        trunk_output: torch.Tensor,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
    ) -> MixedBatch:
        """:meth:`mix` over the batch of every process, in PML's gathered order
        (:func:`~pml_metrix.distributed.gather_rows`; only the tensor that ``mix_level`` mixes is
        gathered), for ``DistributedLossWrapper(efficient=False)``. Every process embeds all the
        feature or input mixes, its share through the (DDP) models and the others without parameter
        gradients (:func:`~pml_metrix.distributed.embed_share`): the loss and gradients of one
        process on the whole batch."""
        trunk, embedder = (without_parameter_gradients(self.models[name]) for name in ("trunk", "embedder"))
        if self.mix_level == "input":
            data = gather_rows(c_f.to_device(data, device=self.data_device, dtype=self.dtype))
        if self.mix_level == "feature":
            trunk_output = gather_rows(trunk_output)
        return self.mix(
            miner,
            data,
            trunk_output,
            gather_rows(embeddings),
            gather_rows(labels),
            lambda mixed: embed_share(mixed, self.get_final_embeddings, embedder),
            lambda mixed: embed_share(mixed, self.compute_embeddings, lambda x: embedder(trunk(x))),
        )


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
