"""Thin adapters over the runtimes that execute artifacts here."""
