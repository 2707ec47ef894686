"""Set similarities against brute force on Python sets; one-hot rows give the class labels'
binary pair labels; bad label sets are refused."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pml_metrix import label_sets
from pml_metrix.label_sets import LABEL_SIMILARITIES, get_label_similarity, share_a_label

BRUTE_FORCE = {
    "jaccard": lambda a, b: len(a & b) / len(a | b),
    "dice": lambda a, b: 2 * len(a & b) / (len(a) + len(b)),
    "cosine": lambda a, b: len(a & b) / math.sqrt(len(a) * len(b)),
    "shares_any": lambda a, b: bool(a & b),
}


@st.composite
def label_set_rows(draw, num_labels, allow_empty):
    rows = draw(st.integers(1, 7))
    sets = draw(st.lists(st.sets(st.integers(0, num_labels - 1), min_size=0 if allow_empty else 1), min_size=rows, max_size=rows))
    return sets


def multi_hot(sets, num_labels, dtype):
    return torch.tensor([[int(c in s) for c in range(num_labels)] for s in sets]).to(dtype)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    name=st.sampled_from(sorted(LABEL_SIMILARITIES)),
    num_labels=st.integers(1, 6),
    dtype=st.sampled_from([torch.bool, torch.uint8, torch.long, torch.float32, torch.float64]),
)
def test_similarities_match_brute_force(data, name, num_labels, dtype):
    allow_empty = name == "shares_any"
    sets = data.draw(label_set_rows(num_labels, allow_empty))
    ref_sets = data.draw(label_set_rows(num_labels, allow_empty))
    got = get_label_similarity(name)(multi_hot(sets, num_labels, dtype), multi_hot(ref_sets, num_labels, dtype))
    expected = [[BRUTE_FORCE[name](a, b) for b in ref_sets] for a in sets]
    assert tuple(got.shape) == (len(sets), len(ref_sets))
    if name == "shares_any":
        assert got.dtype == torch.bool and got.tolist() == expected
    else:
        assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert torch.allclose(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)


def test_batched_inputs_give_one_matrix_per_batch_entry():
    g = torch.Generator().manual_seed(0)
    sets = (torch.rand(3, 4, 5, generator=g) < 0.5).float()
    sets[..., 0] = 1  # no empty set
    ref_sets = (torch.rand(3, 6, 5, generator=g) < 0.5).float()
    ref_sets[..., 1] = 1
    for name, similarity in LABEL_SIMILARITIES.items():
        batched = similarity(sets, ref_sets)
        assert torch.equal(batched, torch.stack([similarity(sets[b], ref_sets[b]) for b in range(3)])), name


@pytest.mark.parametrize("name", sorted(LABEL_SIMILARITIES))
def test_one_hot_rows_give_the_same_class_labels_exactly(name):
    labels = torch.tensor([0, 2, 2, 1, 0, 3])
    one_hot = torch.nn.functional.one_hot(labels, 4)
    same = labels[:, None] == labels[None, :]
    got = get_label_similarity(name)(one_hot, one_hot)
    assert torch.equal(got, same if name == "shares_any" else same.float())


def test_share_a_label_is_shares_any_row_by_row_in_pml_s_shapes():
    g = torch.Generator().manual_seed(1)
    query = (torch.rand(5, 4, generator=g) < 0.4).float()
    knn = (torch.rand(5, 3, 4, generator=g) < 0.4).float()
    got = share_a_label(query[:, None], knn)  # as PML's metrics call it: Q x 1 x C against Q x k x C
    expected = torch.stack([label_sets.shares_any(query[q : q + 1], knn[q])[0] for q in range(5)])
    assert torch.equal(got, expected)
    assert torch.equal(share_a_label(query[:1], knn[0]), label_sets.shares_any(query[:1], knn[0])[0])


def test_bad_label_sets_are_refused():
    good = torch.tensor([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        label_sets.jaccard(torch.tensor([[2, 0], [0, 1]]), good)
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        label_sets.shares_any(good, torch.tensor([[0.5, 0.0]]))
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        label_sets.dice(torch.tensor([[float("nan"), 1.0]]), good)
    for infinite in (float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="hold only 0 and 1"):
            label_sets.jaccard(torch.tensor([[infinite, 1.0], [0.0, 1.0]]), good)
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        label_sets.jaccard(torch.tensor([[1, 0], [0, 255]], dtype=torch.uint8), good)
    with pytest.raises(ValueError, match="N x C tensor"):
        label_sets.jaccard(torch.tensor([1, 0]), good)
    with pytest.raises(ValueError, match=r"must be a dense tensor, got layout torch.sparse_coo: pass labels.to_dense\(\)"):
        label_sets.jaccard(good.to_sparse(), good)
    with pytest.raises(ValueError, match="over 2 and 3 labels"):
        label_sets.cosine(good, torch.tensor([[1, 0, 0]]))
    empty = torch.tensor([[1, 0], [0, 0]])
    for name in ("jaccard", "dice", "cosine"):
        with pytest.raises(ValueError, match=f"empty label set .* where {name} is 0/0"):
            get_label_similarity(name)(good, empty)
    assert label_sets.shares_any(empty, empty).tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="label_similarity must be one of"):
        get_label_similarity("overlap")


def test_label_sets_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match=r"must have shape \(6, C\), one label set per embedding, got shape \(5, 3\)"):
        label_sets.check_label_sets(torch.ones(5, 3), 6)
    label_sets.check_labels_or_label_sets(torch.ones(6, 3), 6)
    label_sets.check_labels_or_label_sets(torch.arange(6), 6)
    column = torch.arange(6)[:, None]  # class labels as a column: label sets by shape, refused for their 0
    with pytest.raises(ValueError, match=r"labels of shape \(6, 1\) are read as label sets over one label.*flatten"):
        label_sets.check_labels_or_label_sets(column, 6)
    with pytest.raises(ValueError, match=r"labels of shape \(6, 1\) are read as multi-hot label sets"):
        label_sets.jaccard(column, column)  # the values: the similarity checks them
    label_sets.check_labels_or_label_sets(torch.ones(6, 1), 6)  # one label each: one class either way


def test_the_torch_free_names_are_the_registry_s():
    """The application offers names.LABEL_SIMILARITIES (no torch for --help): the registry's keys."""
    from pml_metrix import names

    assert names.LABEL_SIMILARITIES == tuple(label_sets.LABEL_SIMILARITIES)


def test_batch_similarities_are_checked_as_given_then_cast():
    sets = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.float64)
    got = label_sets.batch_similarities(sets, "jaccard", torch.float32, torch.device("cpu"))
    assert got.dtype == torch.float32 and torch.equal(got, label_sets.jaccard(sets, sets).float())
    assert label_sets.batch_similarities(sets, "shares_any", torch.float32, torch.device("cpu")).dtype == torch.bool
    off = sets.clone()
    off[0, 0] = 1 + 1e-12  # float32 would round it to 1
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        label_sets.batch_similarities(off, "jaccard", torch.float32, torch.device("cpu"))
    one_hot = torch.eye(3)[[0, 1, 2, 1]]  # one label per item: the bool same-class labels, the name still checked
    same = label_sets.batch_similarities(one_hot, "dice", torch.float32, torch.device("cpu"))
    assert same.dtype == torch.bool and torch.equal(same, one_hot @ one_hot.T > 0)
    with pytest.raises(ValueError, match="label_similarity must be one of"):
        label_sets.batch_similarities(one_hot, "overlap", torch.float32, torch.device("cpu"))


@pytest.mark.parametrize("name", ["jaccard", "dice", "cosine"])
def test_similarities_keep_their_dtype_and_exact_counts_under_autocast(name):
    """torch.autocast would run the count product in bfloat16, whose 8-bit mantissa rounds 299 shared
    labels of 300 (and the ratios); the similarities are computed as without it."""
    sets = torch.zeros(3, 600)
    sets[:, :300] = 1
    sets[1, 299], sets[1, 300] = 0, 1
    sets[2, :] = torch.arange(600) % 3 == 0
    expected = get_label_similarity(name)(sets, sets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = get_label_similarity(name)(sets, sets)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert expected[0, 1].item() != 1.0


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(LABEL_SIMILARITIES)), num_labels=st.integers(1, 6),
       dtype=st.sampled_from([torch.bool, torch.long, torch.float64]))
def test_graded_relevance_is_the_similarity_and_zero_at_an_empty_set(data, name, num_labels, dtype):
    sets = data.draw(label_set_rows(num_labels, allow_empty=True))
    ref_sets = data.draw(label_set_rows(num_labels, allow_empty=True))
    got = label_sets.graded_relevance(multi_hot(sets, num_labels, dtype), multi_hot(ref_sets, num_labels, dtype), name)
    expected = [[float(BRUTE_FORCE[name](a, b)) if a and b else 0.0 for b in ref_sets] for a in sets]
    assert got.dtype == torch.float64 and torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)
