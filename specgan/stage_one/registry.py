"""Stage-one models by name, built the one way vocoders are (:mod:`vocoder.registry`).

A recipe's ``specgan.generator`` / ``specgan.critic`` section is the constructor's keyword
arguments verbatim; ``n_mels``, ``frames`` (positional) and ``n_classes`` come from the data. A new
stage-one generator is one module with ``@register(GENERATORS, "name")`` on a
:class:`~specgan.stage_one.base.SpectrogramGenerator`, and one import line in
:mod:`specgan.stage_one` so the table is filled.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from vocoder.registry import build, check_spec, registrar

__all__ = ["CODECS", "CODEC_CRITICS", "CRITICS", "ENHANCERS", "ENHANCE_CRITICS", "GENERATORS", "build_critic", "build_generator",
           "check_critic_spec", "check_generator_spec", "register"]

GENERATORS: dict[str, type] = {}
CRITICS: dict[str, type] = {}
# the mel → mel family (enhancement, :mod:`specgan.enhancement`): a degraded log-mel in, a clean one out,
# and the critics of (degraded, candidate) pairs
ENHANCERS: dict[str, type] = {}
ENHANCE_CRITICS: dict[str, type] = {}
# the mel codec family (compression, :mod:`specgan.codec`): log-mel → codes → log-mel, and its critics
CODECS: dict[str, type] = {}
CODEC_CRITICS: dict[str, type] = {}
_KINDS = {id(GENERATORS): "stage-one generator", id(CRITICS): "stage-one critic", id(ENHANCERS): "enhancer",
          id(ENHANCE_CRITICS): "enhancement critic", id(CODECS): "codec", id(CODEC_CRITICS): "codec critic"}
_DERIVED = ("n_classes",)  # set from the data, never written in a recipe


def register(table: dict[str, type], name: str):
    """``@register(GENERATORS, "specgan")``: put a class in a stage-one table under ``name``."""
    return registrar(table, _KINDS[id(table)])(name)


def check_generator_spec(spec: Mapping[str, Any]) -> None:
    """Validate ``specgan.generator`` (name, parameter names and types) without building it."""
    check_spec(GENERATORS, "stage-one generator", spec, 2, _DERIVED)


def check_critic_spec(spec: Mapping[str, Any]) -> None:
    """Validate ``specgan.critic`` (name, parameter names and types) without building it."""
    check_spec(CRITICS, "stage-one critic", spec, 2, _DERIVED)


def build_generator(spec: Mapping[str, Any], n_mels: int, frames: int, n_classes: int = 0) -> nn.Module:
    """``{name: specgan, d: 16, ...}`` → a generator for (n_mels x frames) and n_classes labels."""
    return build(GENERATORS, "stage-one generator", spec, n_mels, frames, n_classes=n_classes)


def build_critic(spec: Mapping[str, Any], n_mels: int, frames: int, n_classes: int = 0) -> nn.Module:
    """``{name: specgan, d: 16, ...}`` → a critic for (n_mels x frames) and n_classes labels."""
    return build(CRITICS, "stage-one critic", spec, n_mels, frames, n_classes=n_classes)
