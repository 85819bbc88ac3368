"""vopt: optimize-and-export toolchain for vision models."""

__version__ = "0.1.0"
