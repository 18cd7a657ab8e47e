"""What a stage-one model is conditioned on: one label (a word, a pitch) or several at once.

A :class:`LabelSpace` holds the label keys (``["pitch", "instrument"]``), each key's vocabulary
in class-index order, and the joint histogram of the training clips' index tuples. It turns what
a user asks for into class indices and back:

- a single-label model takes a bare value (``"seven"``, ``60`` or its string form);
- a multi-label model takes a mapping ``{"pitch": 60, "instrument": "violin"}`` with any keys
  left out, or a full tuple in key order. A key left out is drawn from the training clips'
  distribution *given the keys asked for* (the joint histogram), from a generator seeded by the
  clip's seed, so a clip redrawn alone is the clip of a set. Where no training clip has the keys
  asked for, the left-out key is drawn from its marginal. A combination asked for in full is used
  as asked, seen in training or not (that is what factorised conditioning is for).

Class indices are (N,) for one label and (N, L) for L labels; the networks embed each key in its
own rows of one table (:class:`~specgan.stage_one.layers.LabelEmbedding`), so a one-label model's
tensors are those of the models before several labels existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["LabelSpace", "parse_label_args"]


def _same(a, b) -> bool:
    return a == b or str(a) == str(b)


class LabelSpace:
    """Label keys, their vocabularies and the training clips' joint histogram.

    Args:
        keys: The label keys in order (``[]``: unconditional; a one-label model's key may be None
            when a file predates storing it).
        vocabs: Each key's values in class-index order.
        table: (M, L + 1) ints: distinct training index tuples and their counts (None: uniform
            over each key, independently).
    """

    def __init__(self, keys: Sequence[str | None], vocabs: Sequence[Sequence], table=None):
        if len(keys) != len(vocabs):
            raise ValueError(f"LabelSpace: {len(keys)} keys but {len(vocabs)} vocabularies")
        self.keys = list(keys)
        self.vocabs = [list(v) for v in vocabs]
        for key, vocab in zip(self.keys, self.vocabs, strict=True):
            if not vocab:
                raise ValueError(f"LabelSpace: label {key!r} has no values")
        self.table = None if table is None or not len(table) else np.asarray(table, dtype=np.int64).reshape(-1, len(keys) + 1)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_labels(cls, keys: Sequence[str | None], labels: Sequence) -> LabelSpace:
        """The space of training labels: one value per clip (one key), or one sequence of
        ``len(keys)`` values per clip; each vocabulary sorted, the histogram counted.
        """
        if not keys:
            return cls([], [])
        rows = [tuple(v) if len(keys) > 1 else (v,) for v in labels]
        for r in rows:
            if len(r) != len(keys):
                raise ValueError(f"a clip has {len(r)} label values for the {len(keys)} keys {keys}")
        vocabs = [sorted({r[i] for r in rows}, key=_sort_key) for i in range(len(keys))]
        space = cls(keys, vocabs)
        idx = space.encode_rows(rows)
        combos, counts = np.unique(idx, axis=0, return_counts=True)
        space.table = np.concatenate([combos, counts[:, None]], axis=1)
        return space

    @classmethod
    def from_meta(cls, extra: Mapping[str, Any]) -> LabelSpace:
        """The space a model file's metadata describes (``vocab``, ``label_keys``, ``label_table``);
        files from before several labels hold one ``vocab`` list and the ``label`` key.
        """
        vocab = list(extra.get("vocab") or [])
        if not vocab:
            return cls([], [])
        keys = extra.get("label_keys")
        if keys is None:  # one label
            return cls([extra.get("label")], [vocab], extra.get("label_table"))
        return cls(keys, vocab, extra.get("label_table"))

    def to_meta(self) -> dict[str, Any]:
        """What :meth:`from_meta` reads back (a one-label space writes the old form, plus its table)."""
        if not self.keys:
            return {"vocab": []}
        table = self.table.tolist() if self.table is not None else None
        if not self.multi:
            return {"vocab": self.vocabs[0], "label_table": table}
        return {"vocab": self.vocabs, "label_keys": self.keys, "label_table": table}

    # -- shape -----------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether there is any label."""
        return bool(self.keys)

    @property
    def multi(self) -> bool:
        """Whether there are several labels."""
        return len(self.keys) > 1

    @property
    def sizes(self) -> list[int]:
        """Each key's number of values."""
        return [len(v) for v in self.vocabs]

    @property
    def n_classes(self) -> int | list[int]:
        """What the networks' constructors take: the count for one label, the list for several, 0 for none."""
        if not self.keys:
            return 0
        return self.sizes[0] if not self.multi else self.sizes

    def name(self, i: int) -> str:
        """Key ``i`` as error messages write it."""
        return str(self.keys[i]) if self.keys[i] is not None else "label"

    def describe(self) -> str:
        """``pitch (49) × instrument (16)``."""
        return " × ".join(f"{self.name(i)} ({n})" for i, n in enumerate(self.sizes)) or "unconditional"

    # -- values ↔ indices ------------------------------------------------------------------
    def index(self, i: int, value) -> int:
        """Value of key ``i`` (or its string form) → its class index; one line names the valid ones."""
        for j, v in enumerate(self.vocabs[i]):
            if _same(v, value):
                return j
        shown = ", ".join(map(str, self.vocabs[i][:60])) + (" ..." if len(self.vocabs[i]) > 60 else "")
        what = f"{self.name(i)} {value!r}" if self.multi else f"label {value!r}"  # one label: as before
        raise ValueError(f"unknown {what}; this model knows: {shown}")

    def encode_rows(self, rows: Sequence[Sequence]) -> np.ndarray:
        """Full label tuples → (N, L) class indices."""
        return np.array([[self.index(i, v) for i, v in enumerate(r)] for r in rows], dtype=np.int64).reshape(
            len(rows), len(self.keys))

    def request(self, label) -> dict[int, int]:
        """What one clip asks for → ``{key position: class index}`` (keys left out absent).

        ``label``: a bare value (one-label models), a mapping key → value (any subset of the
        keys), a full tuple/list in key order, or None (every key drawn).
        """
        if label is None:
            return {}
        if isinstance(label, Mapping):
            asked = {}
            for k, v in label.items():
                pos = [i for i, key in enumerate(self.keys) if key is not None and str(key) == str(k)]
                if not pos and not self.multi and k in (None, "label"):
                    pos = [0]
                if not pos:
                    raise ValueError(f"unknown label key {k!r}; this model's labels are "
                                     f"{', '.join(self.name(i) for i in range(len(self.keys)))}")
                asked[pos[0]] = self.index(pos[0], v)
            return asked
        if self.multi:
            if isinstance(label, (tuple, list)) and len(label) == len(self.keys):
                return {i: self.index(i, v) for i, v in enumerate(label)}
            example = " ".join(f"--label {self.name(i)}={self.vocabs[i][0]}" for i in range(len(self.keys)))
            raise ValueError(f"this model has several labels ({self.describe()}): name them, e.g. {example}, "
                             f"got {label!r}")
        return {0: self.index(0, label)}

    def complete(self, asked: Mapping[int, int], rng: np.random.Generator) -> tuple[int, ...]:
        """Fill the keys ``asked`` leaves out: drawn from the training histogram given the asked
        keys, or from each missing key's marginal where no training clip matches.
        """
        n = len(self.keys)
        if len(asked) == n:
            return tuple(asked[i] for i in range(n))
        out = dict(asked)
        if self.table is not None:
            combos, counts = self.table[:, :n], self.table[:, n].astype(np.float64)
            match = np.ones(len(combos), bool)
            for i, j in asked.items():
                match &= combos[:, i] == j
            if match.any():
                row = combos[match][rng.choice(int(match.sum()), p=counts[match] / counts[match].sum())]
                return tuple(out.get(i, int(row[i])) for i in range(n))
            for i in range(n):  # no clip with these keys: each missing key from its marginal
                if i not in out:
                    marginal = np.bincount(combos[:, i], weights=counts, minlength=self.sizes[i])
                    out[i] = int(rng.choice(self.sizes[i], p=marginal / marginal.sum()))
            return tuple(out[i] for i in range(n))
        for i in range(n):
            if i not in out:
                out[i] = int(rng.integers(self.sizes[i]))
        return tuple(out[i] for i in range(n))

    def indices(self, labels: Sequence, seeds: Sequence[int]) -> torch.Tensor:
        """One request per clip (see :meth:`request`) → class indices, (N,) for one label or (N, L);
        clip i's left-out keys are drawn from a generator seeded by ``seeds[i]``.
        """
        rows = [self.complete(self.request(lab), np.random.default_rng([int(s), 0x1abe1]))
                for lab, s in zip(labels, seeds, strict=True)]
        t = torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(self.keys))
        return t[:, 0] if not self.multi else t

    def decode(self, idx) -> Any:
        """Class indices of one clip → its label: the value (one label) or ``{key: value}``."""
        idx = [int(i) for i in (idx if isinstance(idx, (tuple, list, np.ndarray, torch.Tensor))
                                and np.ndim(idx) > 0 else [idx])]
        if not self.multi:
            return self.vocabs[0][idx[0]]
        return {self.name(i): self.vocabs[i][j] for i, j in enumerate(idx)}

    def values(self) -> list:
        """Every label in the training histogram, in index order (a one-label model: its vocabulary)."""
        if not self.multi:
            return list(self.vocabs[0]) if self.keys else []
        rows = self.table[:, : len(self.keys)] if self.table is not None else np.zeros((0, len(self.keys)), int)
        return [self.decode(r) for r in rows]

    def column(self, i: int) -> LabelSpace:
        """Key ``i`` alone (its marginal histogram)."""
        table = None
        if self.table is not None:
            n = len(self.keys)
            counts = np.bincount(self.table[:, i], weights=self.table[:, n], minlength=self.sizes[i]).astype(np.int64)
            table = np.stack([np.arange(self.sizes[i]), counts], axis=1)[counts > 0]
        return LabelSpace([self.keys[i]], [self.vocabs[i]], table)


def label_text(label) -> str:
    """A label as file names and tables write it: ``seven``, ``60``, ``pitch=60,instrument=violin``."""
    if isinstance(label, Mapping):
        return ",".join(f"{k}={v}" for k, v in label.items())
    return str(label)


def parse_label_args(values: Sequence[str] | None) -> list | None:
    """``--label`` arguments → what synth asks for.

    Bare values (``--label 60 --label 64``) are labels in turn, as before several labels existed.
    ``key=value`` arguments (``--label pitch=60 --label instrument=violin``) build requests: every
    value given for a key is used, the clips run through every combination of them in turn, and a
    key not given is drawn per clip. The two forms do not mix. Integers are read as integers
    (pitch labels are MIDI numbers).
    """
    if not values:
        return None
    keyed = ["=" in v for v in values]
    if any(keyed) and not all(keyed):
        raise ValueError(f"--label: write every label as key=value or none of them, got {list(values)}")
    if not any(keyed):
        return [_number(v) for v in values]
    per_key: dict[str, list] = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k or not val:
            raise ValueError(f"--label {v!r}: expected key=value, e.g. pitch=60")
        per_key.setdefault(k.strip(), []).append(_number(val.strip()))
    combos: list[dict] = [{}]
    for k, vals in per_key.items():
        combos = [{**c, k: v} for c in combos for v in vals]
    return combos


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))
