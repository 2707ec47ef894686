"""Distributed Metrix: two gloo processes on CPU with PML's DistributedLossWrapper, a
DistributedMixupMiner and a DDP model give the loss and gradients of one process on the
concatenated batch.

PML's convention, checked here: each process returns ``world_size * L`` (L the single-process loss on
the concatenated batch, rows in rank order) and its local embeddings get ``world_size`` times their
rows of the single-process gradient; DDP divides by the world size when it averages, so the model's
parameter gradients equal the single-process ones. Loss parameters outside DDP (proxy anchor's
proxies) see the whole batch in every process: their gradient is ``world_size`` times the
single-process one. Float64; each process sees the rows in another order, so sums run in another order
(measured differences up to 1.5e-15 relative): tolerance rtol 1e-12.

The same holds for a MetrixTrainer step at the feature and input levels, whose mixes pair items of
both processes: each process embeds all of them, taking the parameter gradients of its share only.
"""

import datetime
import gc
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from pytorch_metric_learning import miners
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

import pml_metrix
from pml_metrix.distributed import DistributedMixupMiner, gathered_order
from pml_metrix.app.models import PoolingEmbedder
from pml_metrix.trainers import MetrixTrainer

pytestmark = pytest.mark.slow  # spawned processes

WORLD_SIZE = 2
LOCAL_BATCH = 12
IN_DIM, DIM, NUM_CLASSES = 6, 8, 4
RTOL = 1e-12
TIMEOUT_S = 60


CASES = ["ms", "contrastive", "proxy_anchor", "ms_unseeded"]
LEVELS = ["feature", "input"]


def make_loss(name):
    torch.manual_seed(0)  # the same proxies everywhere
    if name.startswith("ms"):
        return pml_metrix.MetrixMSLoss(alpha=2.0, beta=50.0, base=0.5)
    if name == "contrastive":
        return pml_metrix.MetrixContrastiveLoss(neg_margin=1.0)
    return pml_metrix.MetrixProxyAnchorLoss(NUM_CLASSES, DIM, alpha=32.0, margin=0.1)


def make_miner(name):
    return pml_metrix.MixupMiner(
        strategies=["positive_negative", "anchor_negative"],
        inner_miner=miners.MultiSimilarityMiner(epsilon=0.5) if name.startswith("ms") else None,
        negatives="hardest" if name == "contrastive" else "random",
        num_classes=NUM_CLASSES if name == "proxy_anchor" else None,
        seed=None if name == "ms_unseeded" else 11,  # unseeded: torch's global generator
    )


def make_model():
    torch.manual_seed(1)
    return torch.nn.Linear(IN_DIM, DIM).double()


def whole_batch():
    g = torch.Generator().manual_seed(5)
    inputs = torch.randn(WORLD_SIZE * LOCAL_BATCH, IN_DIM, generator=g, dtype=torch.float64)
    labels = torch.randint(0, NUM_CLASSES, (WORLD_SIZE * LOCAL_BATCH,), generator=g)
    return inputs, labels


def make_trunk_and_embedder():
    torch.manual_seed(2)
    trunk = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU()).double()
    return {"trunk": trunk, "embedder": PoolingEmbedder(4, DIM).double()}


def whole_images():
    return torch.randn(WORLD_SIZE * LOCAL_BATCH, 1, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)


def trainer_step(level, models, images, labels, loss_fn, miner):
    """One MetrixTrainer loss and backward: the loss and the models' parameter gradients."""
    trainer = MetrixTrainer(
        models=models, optimizers={}, batch_size=len(images), loss_funcs={"metric_loss": loss_fn},
        mining_funcs={"tuple_miner": miner}, dataset=None, data_device=torch.device("cpu"), mix_level=level,
    )
    trainer.calculate_loss((images, labels))
    loss = trainer.losses["metric_loss"]
    loss.backward()
    grads = {
        f"{name}.{key}": p.grad.clone()
        for name, model in models.items()
        for key, p in getattr(model, "module", model).named_parameters()
    }
    return loss.detach(), grads


def step(name, model, inputs, labels, loss_fn, miner, global_seed):
    """One forward and backward: the loss, the embeddings' gradient and the parameters' gradients."""
    torch.manual_seed(global_seed)
    embeddings = model(inputs)
    embeddings.retain_grad()
    loss = loss_fn(embeddings, labels, miner(embeddings, labels))
    loss.backward()
    params = dict(getattr(model, "module", model).named_parameters())  # DDP wraps it in .module
    if name == "proxy_anchor":
        params["proxies"] = loss_fn.loss.proxies if hasattr(loss_fn, "loss") else loss_fn.proxies
    return loss.detach(), embeddings.grad, {k: p.grad.clone() for k, p in params.items()}


def worker_results(rank):
    """Each case's step on this process's share of the batch; the DDP models are freed on return."""
    inputs, labels = whole_batch()
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    results = {}
    for name in CASES:
        model = torch.nn.parallel.DistributedDataParallel(make_model())
        loss_fn = DistributedLossWrapper(make_loss(name))
        miner = DistributedMixupMiner(make_miner(name))
        # a different global generator in each process: the plan is rank 0's, broadcast
        results[name] = step(name, model, inputs[local], labels[local], loss_fn, miner, global_seed=100 + rank)
    for level in LEVELS:
        models = {k: torch.nn.parallel.DistributedDataParallel(m) for k, m in make_trunk_and_embedder().items()}
        loss_fn, miner = DistributedLossWrapper(make_loss("ms")), DistributedMixupMiner(make_miner("ms"))
        results[level] = trainer_step(level, models, whole_images()[local], labels[local], loss_fn, miner)
    return results


def worker(rank, port, out_dir):
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=TIMEOUT_S / 2),
    )
    try:
        torch.save(worker_results(rank), os.path.join(out_dir, f"rank{rank}.pt"))
        torch.distributed.barrier()  # every process done with the group before any tears it down
    finally:
        # the DDP models and what holds them in reference cycles go while the group lives: gloo's
        # threads holding their tensors aborted a process at exit ("terminate called without an
        # active exception"), as in pml_metrix.app.torchrun.torchrun_process_group
        gc.collect()
        torch.distributed.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("distributed"))
    context = mp.start_processes(
        worker, args=(free_port(), out_dir), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    try:
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=TIMEOUT_S)
        while not context.join(timeout=1):  # raises as soon as a worker raises
            if datetime.datetime.now() > deadline:
                raise TimeoutError(f"distributed workers still running after {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD_SIZE)]


@pytest.mark.parametrize("name", CASES)
def test_two_processes_match_one_on_the_concatenated_batch(distributed_results, name):
    inputs, labels = whole_batch()
    model, loss_fn, miner = make_model(), make_loss(name), make_miner(name)
    loss, emb_grad, param_grads = step(name, model, inputs, labels, loss_fn, miner, global_seed=100)
    for rank, results in enumerate(distributed_results):
        dist_loss, dist_emb_grad, dist_param_grads = results[name]
        local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(dist_loss, WORLD_SIZE * loss, rtol=RTOL, atol=0)
        torch.testing.assert_close(dist_emb_grad, WORLD_SIZE * emb_grad[local], rtol=RTOL, atol=1e-15)
        for key, grad in param_grads.items():
            scale = WORLD_SIZE if key == "proxies" else 1
            torch.testing.assert_close(dist_param_grads[key], scale * grad, rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("level", LEVELS)
def test_two_processes_train_a_metrix_trainer_like_one(distributed_results, level):
    _, labels = whole_batch()
    loss, grads = trainer_step(level, make_trunk_and_embedder(), whole_images(), labels, make_loss("ms"), make_miner("ms"))
    for results in distributed_results:
        dist_loss, dist_grads = results[level]
        torch.testing.assert_close(dist_loss, WORLD_SIZE * loss, rtol=RTOL, atol=0)
        for key, grad in grads.items():
            torch.testing.assert_close(dist_grads[key], grad, rtol=RTOL, atol=1e-15, msg=key)


def test_gathered_order_follows_pml_gather():
    assert gathered_order(0, 3, 2).tolist() == [0, 1, 2, 3, 4, 5]
    assert gathered_order(1, 3, 2).tolist() == [2, 3, 0, 1, 4, 5]
    assert gathered_order(2, 3, 2).tolist() == [4, 5, 0, 1, 2, 3]


def test_efficient_mode_is_refused():
    with pytest.raises(ValueError, match="efficient=False"):
        DistributedMixupMiner(pml_metrix.MixupMiner(), efficient=True)
    with pytest.raises(TypeError, match="MixupMiner"):
        DistributedMixupMiner(miners.MultiSimilarityMiner())


def test_without_a_process_group_it_is_the_miner():
    embeddings, labels = torch.randn(10, DIM), torch.arange(10) % 3
    ours = DistributedMixupMiner(pml_metrix.MixupMiner(seed=3))(embeddings, labels)
    theirs = pml_metrix.MixupMiner(seed=3)(embeddings, labels)
    assert torch.equal(ours.embeddings, theirs.embeddings) and torch.equal(ours.source_index, theirs.source_index)
    with pytest.raises(ValueError, match="labels"):
        DistributedMixupMiner(pml_metrix.MixupMiner())(embeddings, None)
