"""The foundation every layer builds on: the artifact and its cache, the stage context, progress output and
interrupts. It imports nothing of vopt above it (tests/contract/test_import_layers.py)."""
