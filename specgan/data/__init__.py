"""Datasets: builtin offline builders (one table: ``sources.SOURCES``), standard layouts (``layouts.LAYOUTS``), manifests."""

from specgan.data.manifest import SPLITS, Item, MissingToolError, read_manifest, write_manifest

__all__ = ["SPLITS", "Item", "MissingToolError", "read_manifest", "write_manifest"]
