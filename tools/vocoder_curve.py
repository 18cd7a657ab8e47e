r"""The training curve of one vocoder run of ``tools/ablate_vocoders.py``: the scores it was given at
each CPU budget (``result-<N>min.json``: PESQ-wb, STOI, F0 RMSE on the held-out clips) against the
CPU time, and the dev mel-L1 it logged every ``eval_every`` steps (``history.jsonl``).

A run that started from a model file (``ft-heap``: the shipped speech vocoder trained on) is drawn
on the CPU time of the whole model: ``--offset-minutes`` is the file's own training, and
``--start`` a result JSON of the file itself (``tools/eval_vocoders.py --json``), the curve's first
point.

    python tools/vocoder_curve.py exp/voices/ablation/ft-heap --offset-minutes 120 \\
        --start exp/voices/ablation/shipped-at-training-settings.json --out docs/img/vocoder-ft-heap-curve.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

MEASURES = ("pesq_wb", "stoi", "f0_rmse_cents", "mel_l1")


def points(run: Path, offset_minutes: float = 0.0, start: dict | None = None) -> list[dict]:
    """One row per scored budget, sorted by CPU time: ``minutes`` (the whole model's, offset
    included), ``step`` and the measures the result holds; ``start`` (a result of the file the run
    began from) is the row at ``offset_minutes``.
    """
    rows = []
    if start is not None:
        rows.append({"minutes": offset_minutes, "step": 0, **{m: start[m] for m in MEASURES if m in start}})
    for path in run.glob("result-*min.json"):
        if not re.fullmatch(r"result-\d+min\.json", path.name):
            continue
        r = json.loads(path.read_text())
        if "cpu_minutes" not in r:
            raise ValueError(f"{path}: no cpu_minutes (not a tools/ablate_vocoders.py result)")
        rows.append({"minutes": offset_minutes + float(r["cpu_minutes"]), "step": int(r.get("step", 0)),
                     **{m: r[m] for m in MEASURES if m in r}})
    if not rows:
        raise ValueError(f"{run}: no result-<N>min.json (run tools/ablate_vocoders.py on it first)")
    return sorted(rows, key=lambda r: r["minutes"])


def dev_curve(run: Path) -> list[tuple[int, float]]:
    """(step, dev mel-L1) of every validation ``history.jsonl`` logged."""
    hist = run / "history.jsonl"
    if not hist.is_file():
        return []
    out = []
    for line in hist.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if "dev/mel_l1" in row:
                out.append((int(row["step"]), float(row["dev/mel_l1"])))
    return out


def table(rows: list[dict]) -> str:
    cols = [m for m in MEASURES if any(m in r for r in rows)]
    lines = ["| CPU-hours | step | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for r in rows:
        cells = [f"{r[m]:.3f}" if m in r else "" for m in cols]
        lines.append(f"| {r['minutes'] / 60:.2f} | {r['step']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], dev: list[tuple[int, float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    hours = [r["minutes"] / 60 for r in rows]
    ax = axes[0]
    ax.plot(hours, [r.get("pesq_wb", float("nan")) for r in rows], "o-", label="PESQ-wb")
    ax.set_xlabel("CPU-hours of training (one thread)")
    ax.set_ylabel("PESQ-wb, unseen speaker")
    ax.grid(alpha=0.3)
    if any("stoi" in r for r in rows):
        twin = ax.twinx()
        twin.plot(hours, [r.get("stoi", float("nan")) for r in rows], "s--", color="tab:orange", label="STOI")
        twin.set_ylabel("STOI")
    ax.set_title(title)
    ax = axes[1]
    if dev:
        ax.plot([s for s, _ in dev], [v for _, v in dev], color="tab:green", lw=1)
    ax.set_xlabel("step (this run)")
    ax.set_ylabel("dev mel-L1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an ablation run folder (exp/<work>/ablation/<candidate>)")
    ap.add_argument("--offset-minutes", type=float, default=0.0,
                    help="CPU-minutes of the model file the run started from")
    ap.add_argument("--start", type=Path, default=None,
                    help="a result JSON of that file (tools/eval_vocoders.py --json: its one row)")
    ap.add_argument("--out", type=Path, default=None, help="write the figure here (PNG)")
    args = ap.parse_args(argv)
    start = None
    if args.start is not None:
        blob = json.loads(args.start.read_text())
        rows = [v for v in blob.values() if isinstance(v, dict)] if "pesq_wb" not in blob else [blob]
        if len(rows) != 1:
            ap.error(f"--start {args.start}: expected one vocoder's result, found {len(rows)}")
        start = rows[0]
    try:
        rows = points(args.run, args.offset_minutes, start)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    if args.out is not None:
        plot(rows, dev_curve(args.run), args.out, args.run.name)
        print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
