from vopt.models.sources.hub import TimmSource

__all__ = ["TimmSource"]
