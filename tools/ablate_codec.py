"""Codec ablation at an equal CPU budget (issue 32): the critic on the decoded mel (the GAN part) on
or off, and the code rate (stride), each candidate trained for the same CPU time (one thread, the same
clean speech, the same seed), then scored by ``specgan evaluate``'s codec scorer
(:func:`specgan.codec.evaluate.evaluate_codec`: the unseen speaker, bitrates from the files, Opus and
Codec2 beside) on ``--files`` joined test files.

    python tools/ablate_codec.py --recipe recipes/codec.yaml --cpu-minutes 60
    python tools/ablate_codec.py --only gan --cpu-minutes 120 --files 2

The recipe's work dir must hold its prepared clean speech. Outputs: ``<work>/ablation-codec/<name>/``
(the run, resumable; a larger ``--cpu-minutes`` continues it), ``<name>/eval/codec.json``,
``<name>/result.json`` and ``<work>/ablation-codec/table.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ablate_use import Ablation  # noqa: E402

SECTION = "ablation-codec"
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "gan": ("stride 2, L1 + LSGAN critic + feature matching (the recipe)", []),
    "reg": ("stride 2, L1 only (no critic)", ["codec.adv_weight=0"]),
    "gan-s4": ("stride 4 (15.6 code frames/s), L1 + critic", ["codec.model.stride=4", "codec.model.n_q=24",
                                                              "codec.bitrates=[1.5k, 3k]"]),
}
DEFAULT = ["gan", "reg"]
MEASURES = ("kbps", "pesq_wb", "stoi", "dnsmos_ovrl", "mel_l1")


def score(args, recipe, name: str, out: Path) -> dict:
    """The codec (and, unless --no-peers, Opus and Codec2) on --files joined test files."""
    from specgan.codec.evaluate import evaluate_codec

    ev = evaluate_codec(recipe, model=out / "model.safetensors", max_files=args.files, report=lambda _: None,
                        out_dir=out / "eval", peers=not args.no_peers)
    return {"step": ev["step"], "seconds": ev["seconds"], "overall": ev["overall"], "codec": ev["codec"]}


def table(rows: list[dict]) -> str:
    lines = ["| system | steps | CPU-min | " + " | ".join(MEASURES) + " |", "|---|---|---|" + "---|" * len(MEASURES)]

    def cells(d):
        return " | ".join(f"{d[m]:.3f}" if m in d else "–" for m in MEASURES)

    for r in rows:
        for sys_name, o in sorted(r["overall"].items(), key=lambda kv: kv[1].get("kbps", 0)):
            if sys_name.startswith("specgan"):
                lines.append(f"| {r['name']} {sys_name}: {r['what']} | {r['step']} | {r['cpu_minutes']:.3g} | {cells(o)} |")
    if rows:  # the peers and the ceiling, once (the same files for every candidate)
        for sys_name, o in sorted(rows[0]["overall"].items(), key=lambda kv: (kv[0].split("@")[0], kv[1].get("kbps", 0))):
            if not sys_name.startswith("specgan"):
                lines.append(f"| {sys_name} | | | {cells(o)} |")
    return "\n".join(lines)


def _train(*a, **kw):
    from specgan.training import train_codec

    return train_codec(*a, **kw)


ABLATION = Ablation(__doc__, "recipes/codec.yaml", SECTION, CANDIDATES, DEFAULT, _train, score, table, [
    (("--files",), {"type": int, "default": 2, "help": "joined test files scored (about 20 s each)"}),
    (("--no-peers",), {"action": "store_true", "help": "score the codec alone (no Opus / Codec2)"})], cpu_minutes=60.0)

if __name__ == "__main__":
    sys.exit(ABLATION.main())
