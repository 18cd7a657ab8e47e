"""Merge ``eval/kshot*.json`` files of one recipe (runs over different cells) into one table and figure.

An augment recipe's evaluation scores the cells of its ``kshot.shots`` × ``kshot.seeds``. When a
budget allowed only some cells (another seed count per K), each sub-run's ``kshot.json`` is kept and
this merges their rows: mean ± spread per K and condition over the seeds each K has.

    python tools/kshot_table.py exp/augment-notes/eval/part-*.json --out docs/img/augment-kshot-notes.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def merge(paths: list[Path]) -> dict:
    from specgan.kshot import summarise

    parts = [json.loads(p.read_text()) for p in paths]
    first = parts[0]
    for p, part in zip(paths, parts, strict=True):
        if (part["recipe"], part["test_split"], part["test_items"]) != (first["recipe"], first["test_split"],
                                                                        first["test_items"]):
            raise ValueError(f"{p}: another recipe or test split than {paths[0]}")
    rows = {(r["k"], r["seed"], r["condition"]): r for part in parts for r in part["rows"]}
    merged = dict(first, rows=list(rows.values()), variant=first.get("variant", ""))
    merged["summary"] = summarise(merged["rows"])
    return merged


def main() -> None:
    from specgan.kshot import plot_kshot, summary_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the figure (PNG); the merged JSON and table beside it")
    args = ap.parse_args()
    out = merge(args.parts)
    plot_kshot(out, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))
    table = summary_table(out)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
