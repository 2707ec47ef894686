"""Hypothesis strategies shared by the tests: PML distances, batches, miner tuples."""

import torch
from hypothesis import strategies as st
from pytorch_metric_learning import distances

DTYPES = st.sampled_from([torch.float32, torch.float64])


@st.composite
def pml_distances(draw):
    """Every PML distance the losses accept, with its options."""
    kind = draw(st.sampled_from(["lp", "cosine", "dot"]))
    if kind == "lp":
        return distances.LpDistance(
            p=draw(st.sampled_from([1, 2, 3])),
            power=draw(st.sampled_from([1, 2])),
            normalize_embeddings=draw(st.booleans()),
        )
    if kind == "cosine":
        return distances.CosineSimilarity()
    return distances.DotProductSimilarity(normalize_embeddings=draw(st.booleans()))


def labels_strategy(batch_size: int):
    """Label sets: one class, all distinct, or a random mix."""
    return st.one_of(
        st.just(torch.zeros(batch_size, dtype=torch.long)),
        st.just(torch.arange(batch_size)),
        st.lists(st.integers(0, max(1, batch_size // 3)), min_size=batch_size, max_size=batch_size).map(
            lambda xs: torch.tensor(xs, dtype=torch.long)
        ),
    )


@st.composite
def batches(draw, max_batch: int = 64, max_dim: int = 16):
    """(embeddings, labels, seed) with batch size 1..max_batch."""
    batch_size = draw(st.integers(1, max_batch))
    dim = draw(st.integers(1, max_dim))
    dtype = draw(DTYPES)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, dim, generator=g, dtype=torch.float64).to(dtype)
    labels = draw(labels_strategy(batch_size))
    return embeddings, labels, seed


def random_tuple(kind: str, labels: torch.Tensor, ref_labels: torch.Tensor, seed: int, same_set: bool):
    """A PML miner tuple of the given kind ("none", "pairs", "triplets", "empty")."""
    if kind == "none":
        return None
    empty = torch.zeros(0, dtype=torch.long)
    if kind == "empty":
        return (empty, empty, empty, empty)
    g = torch.Generator().manual_seed(seed)
    same = labels[:, None] == ref_labels[None, :]
    pos = same.clone()
    if same_set:
        pos.fill_diagonal_(False)
    a1, p = torch.where(pos & (torch.rand(pos.shape, generator=g) < 0.5))
    a2, n = torch.where(~same & (torch.rand(same.shape, generator=g) < 0.5))
    if kind == "pairs":
        return a1, p, a2, n
    anchors, positives, negatives = [], [], []
    for a in range(len(labels)):
        ps, ns = torch.where(pos[a])[0], torch.where(~same[a])[0]
        if len(ps) and len(ns):
            anchors.append(a)
            positives.append(ps[torch.randint(len(ps), (1,), generator=g)].item())
            negatives.append(ns[torch.randint(len(ns), (1,), generator=g)].item())
    return tuple(torch.tensor(x, dtype=torch.long) for x in (anchors, positives, negatives))
