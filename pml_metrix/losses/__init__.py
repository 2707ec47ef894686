from .contrastive import MetrixContrastiveLoss
from .metrix_loss import MetrixLossMixin
from .multi_similarity import MetrixMSLoss
from .ntxent import MetrixNTXentLoss
from .proxy_anchor import MetrixProxyAnchorLoss
from .supcon import MetrixSupConLoss

__all__ = [
    "MetrixContrastiveLoss",
    "MetrixLossMixin",
    "MetrixMSLoss",
    "MetrixNTXentLoss",
    "MetrixProxyAnchorLoss",
    "MetrixSupConLoss",
]
