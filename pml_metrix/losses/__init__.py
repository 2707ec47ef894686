from .contrastive import MetrixContrastiveLoss
from .metrix_loss import MetrixLossMixin
from .multi_similarity import MetrixMSLoss
from .proxy_anchor import MetrixProxyAnchorLoss

__all__ = ["MetrixContrastiveLoss", "MetrixLossMixin", "MetrixMSLoss", "MetrixProxyAnchorLoss"]
