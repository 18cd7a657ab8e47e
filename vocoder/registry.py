"""Name → class registries for generators and critics, and the one way to build them.

A recipe section is a constructor's keyword arguments verbatim: ``{name: hifigan, preset: v2}``
builds ``GENERATORS["hifigan"](mel_cfg, preset="v2")``. An unknown name lists the valid ones;
an unknown parameter lists the accepted ones (no ``**kwargs`` sinks).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

__all__ = ["CRITICS", "GENERATORS", "ParamError", "build", "build_critic", "check_spec", "registrar", "build_generator", "check_critic_spec", "check_generator_spec",
           "critic_names", "generator_names",
           "register_critic", "register_generator"]

GENERATORS: dict[str, type] = {}
CRITICS: dict[str, type] = {}


def registrar(table: dict[str, type], kind: str) -> Callable[[str], Callable[[type], type]]:
    """A ``@register(name)`` decorator filling ``table`` (used by specgan's stage-one models too)."""
    return _register(table, kind)


def _register(table: dict[str, type], kind: str) -> Callable[[str], Callable[[type], type]]:
    def deco_for(name: str):
        def deco(cls: type) -> type:
            if name in table and table[name] is not cls:
                raise ValueError(f"{kind} {name!r} is already registered by {table[name].__qualname__}")
            table[name] = cls
            cls.registry_name = name
            return cls

        return deco

    return deco_for


register_generator = _register(GENERATORS, "generator")
register_critic = _register(CRITICS, "critic")


class ParamError(ValueError):
    """A spec parameter of the wrong type: ``param`` names it, so a recipe error can name the key
    (``vocoder.generator.dim: expected an integer, got str 'abc'``).
    """

    def __init__(self, param: str, detail: str):
        super().__init__(f"{param}: {detail}")
        self.param, self.detail = param, detail


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_value(param: str, value: Any, default: Any) -> None:
    """The value's type against the constructor default's (the recipe is YAML: a quoted number or
    a word where a number belongs would otherwise fail deep inside the constructor).
    """
    got = f"got {type(value).__name__} {value!r}"
    if value is None:  # "none / off / the preset's value" for many parameters: the constructor decides
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParamError(param, f"expected true or false, {got}")
    elif isinstance(default, int):
        if not (_number(value) and float(value).is_integer()):
            raise ParamError(param, f"expected an integer, {got}")
    elif isinstance(default, float):
        if not _number(value):
            raise ParamError(param, f"expected a number, {got}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ParamError(param, f"expected a string, {got}")
    elif isinstance(default, (tuple, list)) and default and all(_number(d) for d in default):
        if not isinstance(value, (tuple, list)) or not all(_number(v) for v in value):
            raise ParamError(param, f"expected a list of numbers, {got}")


def check_spec(table: dict[str, type], kind: str, spec: Mapping[str, Any], n_positional: int,
               derived: tuple[str, ...] = ()) -> tuple[type, dict]:
    """(class, params) of ``spec`` = ``{name: ..., **params}`` in ``table``; an unknown name or
    parameter is a ValueError listing the valid ones. The first ``n_positional`` constructor
    arguments and the ``derived`` ones are supplied by the caller, not the spec.
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a {kind} spec needs a 'name' key (one of {', '.join(sorted(table))}), got {spec!r}")
    params = dict(spec)
    name = params.pop("name")
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(sorted(table))}")
    cls = table[name]
    sig = inspect.signature(cls.__init__)
    accepted = [p for p in list(sig.parameters)[1 + n_positional:]
                if sig.parameters[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                and p not in derived]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{kind} {name!r}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    for p, v in params.items():
        default = sig.parameters[p].default
        if default is not inspect.Parameter.empty and default is not None:
            _check_value(p, v, default)
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(v, float):
                params[p] = int(v)  # YAML's 2.0 for an integer parameter
    return cls, params


def build(table: dict[str, type], kind: str, spec: Mapping[str, Any], *args, **derived):
    """Build ``spec`` from ``table`` with the caller's positional and ``derived`` arguments."""
    cls, params = check_spec(table, kind, spec, len(args), tuple(derived))
    return cls(*args, **params, **derived)


_check, _build = check_spec, build


def check_generator_spec(spec: Mapping[str, Any]) -> None:
    """Validate a generator spec's name and parameter names without building it."""
    _ensure_loaded()
    _check(GENERATORS, "generator", spec, 1)


def check_critic_spec(spec: Mapping[str, Any]) -> None:
    """Validate a critic spec's name and parameter names without building it."""
    _ensure_loaded()
    _check(CRITICS, "critic", spec, 0)


def build_generator(spec: Mapping[str, Any], mel_cfg):
    """Build a generator from ``{name: ..., **params}`` for a :class:`vocoder.mel.MelConfig`."""
    _ensure_loaded()
    return _build(GENERATORS, "generator", spec, mel_cfg)


def check_inference(spec: Mapping[str, Any], inference: Mapping[str, Any], mel_cfg) -> dict[str, Any]:
    """``{**spec, **inference}``, the spec a trained generator's model files run with; ValueError when
    ``inference`` names the model or would change any tensor (it may hold only switches of how the
    generator runs, e.g. the ``phase`` design's ``pghi_mode``, ``pghi_tol``, ``refine_iter``). Both
    are built on the meta device: no memory, no time.
    """
    import torch

    if "name" in inference:
        raise ValueError("changes how the generator runs, not which one it is; 'name' is not allowed")
    merged = {**spec, **inference}
    with torch.device("meta"):
        shapes = [{k: tuple(v.shape) for k, v in build_generator(s, mel_cfg).state_dict().items()}
                  for s in (spec, merged)]
    if shapes[0] != shapes[1]:
        a, b = shapes
        diff = sorted(set(a) ^ set(b)) or sorted(k for k in a if a[k] != b[k])
        raise ValueError(f"{dict(inference)} changes the generator's tensors ({', '.join(diff[:3])}); only switches "
                         f"that change how it runs belong here (e.g. pghi_mode, pghi_tol, refine_iter)")
    return merged


def build_critic(spec: Mapping[str, Any]):
    """Build one critic from ``{name: ..., **params}``."""
    _ensure_loaded()
    return _build(CRITICS, "critic", spec)


def generator_names() -> list[str]:
    """Every registered generator name."""
    _ensure_loaded()
    return sorted(GENERATORS)


def critic_names() -> list[str]:
    """Every registered critic name."""
    _ensure_loaded()
    return sorted(CRITICS)


def _ensure_loaded() -> None:
    # Importing the modules registers their classes.
    import vocoder.critics  # noqa: F401
    import vocoder.generators  # noqa: F401
