"""The main job's committed final rows (``main_reference.yaml`` beside this module), for the report to
print beside a live run's rows.

The main job (``configs/main.yaml``) trains what fits the 15-minute budget on 2 cores; its verdict
rests on the study's final rows, at 5 seeds, committed with where they came from. :func:`reference_rows`
returns them for a study of the same settings and variants: a live seed is then read against the same seed of the
reference, and the verdict at 5 seeds is the reference's.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

import yaml

from .config import RunConfig

if TYPE_CHECKING:
    from .study import Study

REFERENCE_FILE = Path(__file__).with_name("main_reference.yaml")
# options a study may set otherwise and still be read against the rows: where files go, what is
# written down, how fast it runs, how its arithmetic is pinned (the rows' provenance says theirs)
REFERENCE_IGNORES = {"description", "output", "seed", "data_root", "eval_batch_size", "device",
                     "deterministic", "reproducible"}


def reference_rows(study: "Study") -> Optional[Dict[str, Any]]:
    """The committed rows of ``study``, or ``None`` when its runs are not the reference's: each of its
    variants must be one the rows hold (by name), and its config, the rows' options with that
    variant's ``mix_level``, every option but :data:`REFERENCE_IGNORES` agreeing.

    The mapping holds ``provenance`` (command, commit, whether pinned, machine, decimals, and an
    optional note that the report prints), ``options``, ``seeds``, ``baseline``, ``per_seed``
    (variant -> its ``mix_level``, ``best_epoch`` and test ``recall_at_1`` per seed), ``summary``
    (variant, ``raw_pixels`` or ``untrained`` -> metric -> [mean, std]; std ``None`` where there is
    no spread), ``paired`` (variant -> metric -> [mean difference to the baseline, sign-flip p]) and
    ``verdict`` (one sentence)."""
    reference = yaml.safe_load(REFERENCE_FILE.read_text())
    expected = RunConfig(**reference["options"])
    for name in study.variants:
        committed = reference["per_seed"].get(name)
        if committed is None:
            return None
        wanted = expected.replace(mix_level=committed["mix_level"]).to_dict()
        given = study.config(name, study.seeds[0]).to_dict()
        if any(given[option] != value for option, value in wanted.items() if option not in REFERENCE_IGNORES):
            return None
    return reference
