from .accuracy_calculator import MetrixAccuracyCalculator
from .alignment_uniformity import alignment, uniformity
from .utilization import nearest_sq_distances, utilization
from .utilization_tester import UtilizationTester

__all__ = [
    "MetrixAccuracyCalculator",
    "UtilizationTester",
    "alignment",
    "nearest_sq_distances",
    "uniformity",
    "utilization",
]
