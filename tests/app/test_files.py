"""Strict JSON for results files (pml_metrix.app.files)."""

import json
import math

import pytest

from pml_metrix.app.files import metrics_from_json, strict_json, write_json


def refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def test_no_value_is_null_and_reads_back_as_nan(tmp_path):
    data = {"mean": 0.5, "std": math.nan, "p": [math.inf, -math.inf, 1.0], "note": None, "n": 3, "ok": True}
    write_json(tmp_path / "results.json", data)
    read = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse_constant)
    assert read == {"mean": 0.5, "std": None, "p": [None, None, 1.0], "note": None, "n": 3, "ok": True}
    back = metrics_from_json({"std": None, "mean": 0.5})
    assert math.isnan(back["std"]) and back["mean"] == 0.5
    assert strict_json((math.nan, 2)) == [None, 2]


def test_a_value_json_cannot_hold_is_refused(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "results.json", {"x": object()})
    assert not (tmp_path / "results.json").exists()
