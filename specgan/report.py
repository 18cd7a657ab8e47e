"""``specgan report``: ``<work>/eval/report.html``, one self-contained page to read and to listen.

The page holds the tables of ``eval/metrics.json`` (run ``specgan evaluate`` first), then per
label a real held-out clip beside generated ones (audio players and spectrograms), then a vocoder
A/B on held-out clips: ground truth, the trained vocoder, Griffin-Lim. WAVs and PNGs are embedded
as data URIs, so the file can be mailed or attached as it is. A small script in the page counts the
audio elements that loaded (``#audio-status``), which the test reads through headless Chromium.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import torch

from specgan.recipe import Recipe

__all__ = ["write_report"]

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:75em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.3em;text-align:center}figcaption{font-size:.8em;color:#555}
img{display:block}audio{width:12em}.note{color:#555;font-size:.9em}"""

_SCRIPT = """<script>
(function(){const a=[...document.querySelectorAll('audio')];let ok=0,bad=0;const s=document.getElementById('audio-status');
function show(){s.textContent='loaded='+ok+' errors='+bad+' total='+a.length;}
a.forEach(e=>{e.addEventListener('loadedmetadata',()=>{if(e.duration>0)ok++;else bad++;show();});
e.addEventListener('error',()=>{bad++;show();});e.load();});show();})();
</script>"""


def _wav_uri(y: np.ndarray, sr: int) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, np.float32), -1, 1), sr, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def _png_uri(logmel: np.ndarray, vmin: float, vmax: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2.2, 1.5))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(logmel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _clip(caption: str, y: np.ndarray, logmel: np.ndarray, sr: int, lim: tuple[float, float]) -> str:
    return (f'<figure><img src="{_png_uri(logmel, *lim)}" width="158" height="108" alt="{html.escape(caption)}">'
            f'<audio controls preload="auto" src="{_wav_uri(y, sr)}"></audio>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td class=num>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _vocoder_table(voc: dict) -> str:
    cols = ["mel_l1", "mrstft", "f0_rmse_cents", "vuv_error", "pesq_wb", "stoi", "x_real_time"]
    cols = [c for c in cols if any(c in voc[k] for k in ("trained", "griffinlim") if k in voc)]
    head = "<tr><th>vocoder</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    rows = ""
    for k in ("trained", "griffinlim"):
        if k in voc:
            rows += f"<tr><td>{html.escape(str(voc[k].get('model', k)))}</td>" + "".join(
                f"<td class=num>{_fmt(voc[k].get(c, ''))}</td>" for c in cols) + "</tr>"
    return f"<table>{head}{rows}</table>"


@torch.inference_mode()
def write_report(recipe: Recipe, per_label: int = 2, max_labels: int = 10, ab_clips: int = 4,
                 vocoder_name: str = "auto") -> Path:
    """Write ``<work>/eval/report.html`` from ``eval/metrics.json`` and fresh samples."""
    from specgan.audio import load_clip
    from specgan.data.prepare import load_split
    from specgan.evaluate import _is_griffinlim
    from specgan.sampling import load_stage_one, sample
    from specgan.synth import wav_name, load_vocoder, resolve_stage_one, synth_plan
    from vocoder.mel import MelSpectrogram
    from vocoder.registry import build_generator

    metrics_path = recipe.work / "eval" / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: run `specgan evaluate --recipe {recipe.path}` first")
    m = json.loads(metrics_path.read_text())
    model = load_stage_one(resolve_stage_one(recipe))
    voc, desc = load_vocoder(recipe, vocoder_name, model.mel_cfg)
    voc.mel_cfg.check_compatible(model.mel_cfg, f"vocoder {desc}", "stage-one model")
    gl = build_generator({"name": "griffinlim"}, model.mel_cfg).eval()
    mel_cfg, sr = model.mel_cfg, model.mel_cfg.sample_rate
    mel_fn = MelSpectrogram(mel_cfg)
    duration = recipe.synth.duration if recipe.synth.duration is not None else recipe.data.preprocess.clip_seconds
    length = int(round(duration * sr)) if duration else None  # as synth cuts its clips
    lim = (mel_cfg.log_floor, float(model.stats.mean.max() + 3 * model.stats.std.max()))

    test = load_split(recipe, m.get("split", "test"))
    by_label: dict = {}
    for it in test:
        by_label.setdefault(str(it.label), []).append(it)

    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>specgan report: {html.escape(recipe.name)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>specgan report: {html.escape(recipe.name)}</h1>",
             f"<p class=note>recipe {html.escape(str(recipe.path))}; stage one {html.escape(m['generation']['model'])} "
             f"(step {m['generation']['step']}); vocoder {html.escape(desc)}; split {html.escape(m['split'])}. "
             f"Audio players: <span id=audio-status>not loaded</span></p>"]

    gen = m["generation"]
    parts.append("<h2>Generation (stage one)</h2>")
    parts.append(f"<p class=note>{html.escape(gen['protocol'])}</p>")
    names = {"inception_score": "Inception Score, generated", "inception_score_real": "Inception Score, real (ceiling)",
             "fid": "FID, generated vs real", "fid_real_train_vs_test": "FID, real train vs real test (floor)",
             "label_accuracy": "label accuracy, generated", "label_accuracy_real": "label accuracy, real",
             "ndb": "NDB (bins that differ)", "bins": "NDB bins (k-means on real)", "jsd": "JSD of bin shares",
             "diversity_generated": "diversity (mean pairwise distance), generated",
             "diversity_real": "diversity, real", "nn_train_distance_generated": "distance to nearest train clip, "
             "generated", "nn_train_distance_real": "distance to nearest train clip, real held-out"}
    rows = [(name, gen[k]) for k, name in names.items() if k in gen]
    if "classifier" in gen:
        rows.insert(0, ("classifier test accuracy (real)", gen["classifier"]["test_accuracy"]))
    for k, v in gen.get("label_accuracy_vocoded", {}).items():
        rows.append((f"label accuracy after vocoding ({k}) and re-analysis", v))
    if "pitch" in gen:
        rows += [("pitch accuracy, generated (±0.5 semitone)", gen["pitch"]["generated"]["pitch_accuracy"]),
                 ("pitch accuracy, real", gen["pitch"]["real"]["pitch_accuracy"]),
                 ("pitch-class accuracy, generated", gen["pitch"]["generated"]["pitch_class_accuracy"])]
    parts.append(_table(rows))

    parts.append("<h2>Per label: real vs generated</h2><table><tr><th>label</th><th>label accuracy "
                 "(generated / real)</th><th>real</th><th>generated</th></tr>")
    labels = list(model.vocab) if model.generator.n_classes else [None]
    plan = synth_plan(labels, per_label * len(labels), recipe.synth.seed)
    if len(labels) > max_labels:
        labels = [labels[i] for i in np.linspace(0, len(labels) - 1, max_labels).round().astype(int)]
    per = gen.get("label_accuracy_per_label", {})
    for lab in labels:
        real_cells = ""
        if str(lab) in by_label:
            it = by_label[str(lab)][0]
            y = load_clip(it.path, sr, recipe.data.preprocess, mel_cfg.n_fft)
            real_cells = _clip(f"real {it.id}", y, mel_fn(torch.from_numpy(y)[None])[0].numpy(), sr, lim)
        # synth's own plan (every label in turn, clip i = seed + i): each clip here is the WAV that
        # `specgan synth --n <enough> --seed <synth.seed>` writes under the name in its caption
        seeds = [s for lab2, s in plan if lab2 == lab][:per_label]
        logmel = torch.cat([sample(model, 1, labels=lab, seed=s)[1] for s in seeds])
        wavs = voc(logmel.float())[:, 0]
        gen_cells = "".join(_clip(f"seed {s}: {wav_name(lab, s)}", w[:length].numpy(), logmel[j].numpy(), sr, lim)
                            for j, (s, w) in enumerate(zip(seeds, wavs, strict=True)))
        acc = per.get(str(lab), {})
        acc_txt = f"{_fmt(acc.get('generated', ''))} / {_fmt(acc.get('real', ''))}" if acc else ""
        parts.append(f"<tr><th>{html.escape(str(lab))}</th><td class=num>{acc_txt}</td><td>{real_cells}</td>"
                     f"<td>{gen_cells}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Vocoder (stage two): copy synthesis</h2>")
    parts.append(f"<p class=note>{html.escape(m['vocoder']['protocol'])}</p>")
    parts.append(_vocoder_table(m["vocoder"]))
    pairs = [("Griffin-Lim", gl)] if _is_griffinlim(voc) else [("trained", voc), ("Griffin-Lim", gl)]
    parts.append("<table><tr><th>clip</th><th>ground truth</th>" + "".join(
        f"<th>{'trained vocoder' if n == 'trained' else n}</th>" for n, _ in pairs) + "</tr>")
    for it in test[:ab_clips]:
        y = load_clip(it.path, sr, recipe.data.preprocess, mel_cfg.n_fft)
        y = mel_cfg.crop_samples(y)
        mel = mel_cfg.crop_frames(mel_fn(torch.from_numpy(y)[None]), y.size)
        cells = [_clip("ground truth", y, mel[0].numpy(), sr, lim)]
        for name, g in pairs:
            y_hat = g(mel)[0, 0].numpy()
            cells.append(_clip(name, y_hat, mel_fn(torch.from_numpy(y_hat)[None])[0].numpy(), sr, lim))
        parts.append(f"<tr><th>{html.escape(it.id)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts.append(f"<details><summary>metrics.json</summary><pre>{html.escape(json.dumps(m, indent=1))}</pre>"
                 f"</details>{_SCRIPT}</body></html>")
    out = recipe.work / "eval" / "report.html"
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out
