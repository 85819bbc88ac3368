"""Small factories for real pretrained models that install offline from PyPI (`source: python`)."""
