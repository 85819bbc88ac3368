from vopt.models.sources.hub import TorchvisionSource

__all__ = ["TorchvisionSource"]
