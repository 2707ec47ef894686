"""The main job's committed final rows (``main_reference.yaml`` beside this module), for the report to
print beside a live run's rows.

The main job (``configs/main.yaml``) trains what fits the 15-minute budget on 2 cores; its verdict
rests on the study's final rows, at 5 seeds, committed with where they came from. :func:`reference_rows`
returns them for a study of the same settings: a live seed is then read against the same seed of the
reference, and the verdict at 5 seeds is the reference's.
"""

from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from .config import RunConfig

REFERENCE_FILE = Path(__file__).with_name("main_reference.yaml")
# options a study may set otherwise and still be read against the rows: where files go, what is
# written down, how fast it runs, how its arithmetic is pinned (the rows' provenance says theirs)
REFERENCE_IGNORES = {"description", "output", "seed", "num_workers", "data_root", "eval_batch_size", "device",
                     "deterministic", "reproducible"}


def reference_rows(base: RunConfig) -> Optional[Dict[str, Any]]:
    """The committed rows of a study whose base config is ``base``, or ``None`` when its settings are
    not the reference's (every option but :data:`REFERENCE_IGNORES` must agree).

    The mapping holds ``provenance`` (command, commit, whether pinned, machine, decimals, and an
    optional note that the report prints), ``options``, ``seeds``, ``baseline``, ``per_seed``
    (variant -> its ``mix_level``, ``best_epoch`` and test ``recall_at_1`` per seed), ``summary``
    (variant, ``raw_pixels`` or ``untrained`` -> metric -> [mean, std]; std ``None`` where there is
    no spread), ``paired`` (variant -> metric -> [mean difference to the baseline, sign-flip p]) and
    ``verdict`` (one sentence)."""
    reference = yaml.safe_load(REFERENCE_FILE.read_text())
    expected = RunConfig(**reference["options"]).to_dict()
    given = base.to_dict()
    if any(given[name] != value for name, value in expected.items() if name not in REFERENCE_IGNORES):
        return None
    return reference
