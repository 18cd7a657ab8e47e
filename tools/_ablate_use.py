"""The equal-CPU-budget ablation loop the uses' tools share (tools/ablate_enhance.py,
tools/ablate_codec.py): candidates are recipe overlays; each trains on one thread until its CPU budget
is used (resuming; a larger budget continues it), is scored once per budget, and lands in
``<work>/<section>/<name>/result.json`` (and ``result-<minutes>min.json``); the table of every scored
candidate goes to ``<work>/<section>/table.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Ablation:
    """One use's ablation: its candidates, how one is trained and scored, and its table.

    Attributes:
        doc: The tool's help text.
        recipe: The default recipe.
        section: The output folder under the work dir.
        candidates: name → (what it is, recipe overlay lines).
        default: The candidates run without ``--only``.
        train: ``(recipe, out, cpu_seconds, meta) → result dict`` (a ``specgan.training.train_*``).
        score: ``(args, recipe, name, out) → result fields`` (step, overall, ...).
        table: Rows → markdown.
        options: Extra command-line options: (flags, argparse keywords).
        cpu_minutes: The default budget.
    """

    doc: str
    recipe: str
    section: str
    candidates: dict[str, tuple[str, list[str]]]
    default: list[str]
    train: Callable
    score: Callable
    table: Callable
    options: list[tuple[tuple[str, ...], dict]]
    cpu_minutes: float = 20.0

    def load(self, args, name: str):
        from specgan.recipe import load_recipe

        return load_recipe(args.recipe, [*self.candidates[name][1], *(args.set or [])])

    def run_one(self, args, name: str) -> dict:
        import torch

        torch.set_num_threads(1)
        from specgan.training import train_to_cpu_budget

        recipe = self.load(args, name)
        out = recipe.work / self.section / name
        out.mkdir(parents=True, exist_ok=True)
        budget = args.cpu_minutes * 60
        done = out / "result.json"
        if done.is_file() and json.loads(done.read_text())["cpu_minutes"] * 60 >= budget - 1:
            return json.loads(done.read_text())
        used = train_to_cpu_budget(out, budget, lambda seconds: self.train(
            recipe, steps=10**9, out=out, progress=False, mode="run", device="cpu", cpu_seconds=seconds,
            meta={"ablation": name}))
        result = {"name": name, "what": self.candidates[name][0], "cpu_minutes": used / 60,
                  **self.score(args, recipe, name, out)}
        done.write_text(json.dumps(result, indent=1))
        (out / f"result-{round(used / 60)}min.json").write_text(json.dumps(result, indent=1))
        return result

    def main(self) -> int:
        ap = argparse.ArgumentParser(description=self.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--recipe", default=self.recipe)
        ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe override for every candidate")
        ap.add_argument("--cpu-minutes", type=float, default=self.cpu_minutes, help="training CPU time per candidate")
        ap.add_argument("--only", default=None, help=f"comma-separated candidates (default: {','.join(self.default)})")
        for flags, kw in self.options:
            ap.add_argument(*flags, **kw)
        args = ap.parse_args()
        names = args.only.split(",") if args.only else self.default
        unknown = [n for n in names if n not in self.candidates]
        if unknown:
            ap.error(f"unknown candidate(s) {unknown}; known: {', '.join(self.candidates)}")
        for name in names:  # every overlay must load before anything trains
            self.load(args, name)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        for name in names:  # one after another, one thread: the budget is CPU time, not wall time
            print(f"ablation: {name} ...", flush=True)
            r = self.run_one(args, name)
            print(f"ablation: {name} done: step {r['step']}, {r['cpu_minutes']:.1f} CPU-min", flush=True)
        work = self.load(args, names[0]).work / self.section
        rows = [json.loads(p.read_text()) for p in (work / n / "result.json" for n in self.candidates) if p.is_file()]
        text = self.table(rows)
        (work / "table.md").write_text(text)
        print(text)
        return 0
