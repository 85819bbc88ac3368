"""Artifact formats as plugins (vopt.formats.base.Format), one module each, found through the registry
(`vopt.registry.get_format`, entry-point group `vopt.formats`). Nothing here imports a heavy library."""
