from .mixup_miner import MixupMiner

__all__ = ["MixupMiner"]
