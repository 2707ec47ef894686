"""Utilization (Metrix, section 3): how close test embeddings lie to what training explored.

``u(Q, X) = mean_{q in Q} min_{x in X} ||q - x||^2``, through one exact faiss k=1 search
(``IndexFlatL2``), without a Q x X matrix: faiss scans the references in blocks.
"""

import faiss
import numpy as np
import torch
from torch import Tensor

from ..checks import check_embeddings


def as_faiss_input(embeddings: Tensor) -> np.ndarray:
    """A contiguous float32 CPU array; no copy when the tensor already is one."""
    return embeddings.detach().to("cpu", torch.float32).contiguous().numpy()


def nearest_sq_distances(query: Tensor, *references: Tensor) -> Tensor:
    """Squared Euclidean distance from each query to its nearest reference.

    Args:
        query: Q x d embeddings.
        references: one or more R_i x d tensors, searched together as one reference set
            (added to one index in turn, never concatenated).

    Returns:
        Q float64 distances, on ``query``'s device; float32 rounding clamped at 0.
    """
    check_embeddings(query, "query")
    if not references:
        raise ValueError(
            "no reference tensor after the query: pass the references to search, e.g. utilization(query, train_embeddings)"
        )
    dim = query.shape[1]
    for i, reference in enumerate(references):
        check_embeddings(reference, f"references[{i}]", allow_empty=True)
        if reference.shape[1] != dim:
            raise ValueError(
                f"references[{i}] has dimension {reference.shape[1]} but the query has {dim}: "
                "embed both with the same model"
            )
    if sum(len(reference) for reference in references) == 0:
        raise ValueError("every reference tensor is empty: pass at least one reference embedding")
    index = faiss.IndexFlatL2(dim)
    for reference in references:
        if len(reference) > 0:
            index.add(as_faiss_input(reference))
    sq_distances, _ = index.search(as_faiss_input(query), 1)
    return torch.from_numpy(sq_distances[:, 0]).to(query.device, torch.float64).clamp_(min=0)


def utilization(query: Tensor, *references: Tensor) -> float:
    """``u(Q, X)``: the mean of :func:`nearest_sq_distances` (Q x d query, R_i x d references)."""
    return nearest_sq_distances(query, *references).mean().item()
