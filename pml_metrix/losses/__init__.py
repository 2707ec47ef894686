from .contrastive import MetrixContrastiveLoss
from .metrix_loss import MetrixLossMixin
from .multi_similarity import MetrixMSLoss
from .ntxent import MetrixNTXentLoss
from .proxy_anchor import MetrixProxyAnchorLoss
from .supcon import MetrixSupConLoss
from .wrappers import CrossBatchMemory, SelfSupervisedLoss

__all__ = [
    "CrossBatchMemory",
    "MetrixContrastiveLoss",
    "MetrixLossMixin",
    "MetrixMSLoss",
    "MetrixNTXentLoss",
    "MetrixProxyAnchorLoss",
    "MetrixSupConLoss",
    "SelfSupervisedLoss",
]
