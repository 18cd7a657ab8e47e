"""Datasets: builtin offline builders (digits, notes), standard layouts, manifests."""

from specgan.data.manifest import SPLITS, Item, MissingToolError, read_manifest, write_manifest

__all__ = ["SPLITS", "Item", "MissingToolError", "read_manifest", "write_manifest"]
