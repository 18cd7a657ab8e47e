"""``specgan report``: ``<work>/eval/report.html``, one self-contained page to read and to listen.

The page is a view of what ``specgan evaluate`` and ``specgan synth`` wrote (run evaluate first);
for an enhance or codec recipe, of its evaluation (the systems' tables and the example WAVs as
players: noisy / enhanced / clean, or original / Opus / Codec2 / specgan). For a generation recipe:
the tables of ``eval/metrics.json``, then per label a real held-out clip beside generated ones
(synth's own files where it wrote them; the rest of synth's plan drawn here), then evaluate's
vocoder A/B on held-out clips (ground truth, the trained vocoder, Griffin-Lim: its copies in
``eval/copy/``). WAVs and PNGs are embedded
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


def _synth_clips(recipe: Recipe, m: dict, vocoder_desc: str | None) -> dict:
    """The clips synth wrote, by (label, seed) → (WAV path, its mel), when ``<work>/synth`` holds a set drawn
    by the stage one evaluate scored through the vocoder ``vocoder_desc`` (None: any); else {}.
    """
    synth_dir = recipe.work / "synth"
    try:
        blob = json.loads((synth_dir / "synth.json").read_text())
        mels = np.load(synth_dir / "mels.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return {}
    gen = m["generation"]
    same = (blob.get("stage_one"), blob.get("stage_one_step")) == (gen["model"], gen["step"]) and \
        vocoder_desc in (None, blob.get("vocoder")) and not blob.get("interpolate") and \
        len(mels) == len(blob.get("clips", []))
    if not same:
        return {}
    return {(_row_key(c["label"]), c["seed"]): (synth_dir / c["wav"], mels[row]) for row, c in enumerate(blob["clips"])}


def _row_key(label) -> str:
    """The report's row of a label: the label, or with several labels the first one's value (synth
    draws every value of the first label in turn, the others per clip).
    """
    if isinstance(label, dict):
        return str(next(iter(label.values())))
    if isinstance(label, list):
        return str(label[0])
    return str(label)


def _systems_table(overall: dict, measures: list[str]) -> str:
    head = "<tr><th>system</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in measures) + "</tr>"
    rows = "".join(f"<tr><td>{html.escape(s)}</td>" + "".join(f"<td class=num>{_fmt(o.get(m, ''))}</td>"
                                                               for m in measures) + "</tr>" for s, o in overall.items())
    return f"<table>{head}{rows}</table>"


# the enhance and codec recipes' pages: (the evaluation's file, its examples' folder, the systems' order
# in a row of players, the measures shown, what the page says)
_USE_PAGES = {
    "enhance": ("enhance.json", "enhance", ("clean", "noisy", "baseline", "enhanced", "enhanced_gain",
                                            "enhanced_vocoder", "clean_vocoded"),
                ["pesq_wb", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"],
                "Enhancement on the unseen speaker under unseen noise types: the noisy input, the classical "
                "baseline (spectral gating), the enhancer through both syntheses, and the clean clip's own mel "
                "through the vocoder (the ceiling of the vocoder route)."),
    "codec": ("codec.json", "codec", ("original", "specgan", "opus", "codec2", "vocoded"),
              ["kbps", "pesq_wb", "stoi", "dnsmos_ovrl", "mel_l1"],
              "The codec against Opus and Codec2 on the unseen speaker; bitrates counted from the files' sizes. "
              "'vocoded' is the original's own mel through the vocoder, the ceiling of the mel route."),
}


def _write_use_report(recipe: Recipe) -> Path:
    """The page of an enhance or codec recipe: its evaluation's tables and its example WAVs as players."""
    import soundfile as sf

    from vocoder.mel import MelSpectrogram

    name, folder, order, measures, intro = _USE_PAGES[recipe.task]
    path = recipe.work / "eval" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `specgan evaluate --recipe {recipe.path}` first")
    m = json.loads(path.read_text())
    parts = [f"<h1>{html.escape(recipe.name)}: {recipe.task}</h1><p class=note>{html.escape(intro)}</p>",
             f"<p class=note>{html.escape(m.get('protocol', ''))}. Model {html.escape(str(m.get('model')))} "
             f"(step {m.get('step')}); vocoder {html.escape(str(m.get('vocoder')))}.</p>",
             "<h2>Overall</h2>", _systems_table(m["overall"], measures)]
    for key, title in (("by_snr", "By SNR (dB)"), ("by_noise", "By noise type")):
        for group, overall in m.get(key, {}).items():
            parts += [f"<h3>{title}: {html.escape(group)}</h3>", _systems_table(overall, measures)]
    if "codec" in m:
        c = m["codec"]
        parts.append(_table([("encode x real time", c["encode_x_real_time"]),
                             ("decode x real time (with the vocoder)", c["decode_x_real_time"]),
                             ("threads", c["threads"]), ("parameters", c["parameters"]),
                             ("float16 MB", c["fp16_megabytes"])]))
    wavs = sorted((recipe.work / "eval" / folder).glob("*.wav"))
    mel_fn = MelSpectrogram(recipe.mel)

    def rank(p: Path) -> tuple:
        # enhance: <noise>_<snr>dB_clip<i>_<system> (a row per pair); codec: clip0_<system>[_<rate>] (one row)
        import re

        hit = re.match(r"^(.+?_clip\d+)_(.+)$", p.stem) if recipe.task == "enhance" else None
        group, kind = (hit.group(1), hit.group(2)) if hit else ("", p.stem.split("_")[1] if "_" in p.stem else p.stem)
        rate = re.findall(r"_([0-9.]+)k?$", p.stem) if not hit else []
        return group, order.index(kind) if kind in order else len(order), float(rate[0]) if rate else 0.0, p.stem

    groups: dict[str, list[Path]] = {}
    for w in sorted(wavs, key=rank):
        groups.setdefault(rank(w)[0], []).append(w)
    if groups:
        parts.append("<h2>Listen</h2>")
    for group, files in groups.items():
        row = []
        for w in files:
            y, sr = sf.read(w, dtype="float32")
            lm = mel_fn(torch.from_numpy(y)).numpy() if len(y) > recipe.mel.n_fft else np.zeros((recipe.mel.n_mels, 1))
            row.append(_clip(w.stem[len(group) + 1:] if group else w.stem.split("_", 1)[-1], y, lm, sr,
                             (float(recipe.mel.log_floor), float(lm.max()) if lm.size else 0.0)))
        parts.append((f"<h3>{html.escape(group)}</h3>" if group else "") + "<div>" + "".join(row) + "</div>")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(recipe.name)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}<p id=audio-status class=note></p>{_SCRIPT}"
            "</body></html>")
    out = recipe.work / "eval" / "report.html"
    out.write_text(page)
    return out


def _write_kshot_report(recipe: Recipe) -> Path:
    """The page of an augment recipe: the accuracy-against-K figure and table of ``eval/kshot.json``,
    and per class a real clip of the first cell beside its GAN's and the shipped model's clips
    (log-mels as the recogniser reads them: the experiment never vocodes).
    """
    from specgan.kshot import _suffix, cells, summary_cells

    suffix = _suffix(recipe.kshot)
    path = recipe.work / "eval" / f"kshot{suffix}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `specgan evaluate --recipe {recipe.path}` first")
    m = json.loads(path.read_text())
    png = path.with_suffix(".png")
    head, rows, caption = summary_cells(m)
    body = "".join("<tr>" + "".join(f"<td class=num>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    parts = [f"<h1>{html.escape(recipe.name)}: low-resource augmentation</h1>",
             "<p class=note>A recogniser trained from scratch per cell (K real clips per class, drawn by a seed) and "
             "condition, scored on the held-out split. 'shipped' draws from a model that saw the whole train split: "
             "a reference, not a low-resource result.</p>",
             f'<img src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" alt="accuracy against K">'
             if png.is_file() else "",
             "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + body + "</table>",
             f"<p class=note>{html.escape(caption)}</p>"]
    k, seed = cells(recipe.kshot)[0]
    sets_file = recipe.work / "kshot" / f"k{k}-s{seed}" / f"sets{suffix}.pt"
    if sets_file.is_file():
        sets = torch.load(sets_file, weights_only=False)
        parts.append(f"<h2>Cell K={k}, seed {seed}: per class, a real clip, a classical copy, the cell GAN's and the shipped model's (normalised log-mels)</h2>")
        for c in sets["classes"][:10]:
            row = []
            for name in ("real", "classical", "gan", "shipped"):
                if name in sets and c in sets[name][1]:
                    x = sets[name][0][sets[name][1].index(c), 0].numpy()
                    row.append(f'<figure><img src="{_png_uri(x, -1.0, 1.0)}" width="158" height="108" '
                               f'alt="{name} {html.escape(str(c))}"><figcaption>{name}</figcaption></figure>')
            parts.append(f"<h3>{html.escape(str(c))}</h3><div>{''.join(row)}</div>")
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(recipe.name)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}<p id=audio-status class=note></p>{_SCRIPT}"
            "</body></html>")
    out = recipe.work / "eval" / f"report{suffix}.html"
    out.write_text(page)
    return out


@torch.inference_mode()
def write_report(recipe: Recipe, per_label: int = 2, max_labels: int = 10, vocoder_name: str = "auto") -> Path:
    """Write ``<work>/eval/report.html``: a view of ``eval/`` and ``synth/``.

    The tables come from ``eval/metrics.json`` (:func:`specgan.evaluate.headline_rows`, the rows
    the terminal summary prints); the vocoder A/B plays evaluate's copy-synthesis examples
    (``eval/copy/``); the generated clips are synth's plan (every label in turn, clip i = seed + i),
    read from synth's own files where ``<work>/synth`` has them and drawn (stage one's one sampling
    path, :meth:`specgan.stage_one.StageOne.sample`) only where it does not. Real held-out clips
    are read from the data.

    Args:
        recipe: The recipe whose work dir is presented.
        per_label: Generated clips shown per label.
        max_labels: Labels shown (evenly spaced over the vocabulary when there are more).
        vocoder_name: The vocoder of the generated clips (synth's files are used when synth used
            it too).
    """
    if recipe.task in _USE_PAGES:
        return _write_use_report(recipe)
    if recipe.task == "augment":
        return _write_kshot_report(recipe)
    import soundfile as sf

    from specgan.audio import load_clip
    from specgan.checkpoints import load_pair, vocoder_choice
    from specgan.data.prepare import load_split
    from specgan.evaluate import headline_rows
    from specgan.synth import edge_repair, synth_plan, vocode_protected, wav_name
    from vocoder.mel import MelSpectrogram

    metrics_path = recipe.work / "eval" / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: run `specgan evaluate --recipe {recipe.path}` first")
    m = json.loads(metrics_path.read_text())
    if "examples" not in m["vocoder"]:
        raise ValueError(f"{metrics_path} was written by an older specgan (no copy-synthesis examples); run "
                         f"`specgan evaluate --recipe {recipe.path}` again")
    desc = str(vocoder_choice(recipe, vocoder_name))
    written = _synth_clips(recipe, m, desc)
    pair = None  # stage one and the vocoder, loaded only for a clip synth did not write

    def generated(lab, seed) -> tuple[str, np.ndarray, np.ndarray]:
        nonlocal pair
        if (_row_key(lab), seed) in written:
            path, logmel = written[(_row_key(lab), seed)]
            return f"seed {seed}: {path.name}", sf.read(path, dtype="float32")[0], np.asarray(logmel)
        if pair is None:
            pair = load_pair(recipe, vocoder_name)
        label = pair.stage_one.resolve(lab, [seed])[0]
        logmel = pair.stage_one.sample(label, seeds=[seed])
        span = pair.stage_one.generator.frames * pair.stage_one.mel_cfg.hop_length
        wav = vocode_protected(pair.vocoder, logmel, length or span, edge_repair(recipe, pair.stage_one.mel_cfg))[0]
        return f"seed {seed}: {wav_name(label, seed)}", wav, logmel[0].numpy()  # as synth writes it

    mel_cfg, sr = recipe.mel, recipe.mel.sample_rate
    mel_fn = MelSpectrogram(mel_cfg)
    duration = recipe.synth.duration if recipe.synth.duration is not None else recipe.data.preprocess.clip_seconds
    length = int(round(duration * sr)) if duration else None  # as synth cuts its clips
    gen = m["generation"]
    vocab = gen.get("vocab") or [None]  # None: an unconditional model
    keys = gen.get("label_keys")
    test = load_split(recipe, m.get("split", "test"))
    by_label: dict = {}
    for it in test:
        by_label.setdefault(_row_key(it.label), []).append(it)

    # synth's default plan: every label in turn; with several, every value of the first in turn
    labels = [{keys[0]: v} for v in vocab[0]] if keys else list(vocab)
    plan = synth_plan(labels, per_label * len(labels), recipe.synth.seed)
    if len(labels) > max_labels:
        labels = [labels[i] for i in np.linspace(0, len(labels) - 1, max_labels).round().astype(int)]
    cells: dict = {}
    for lab in labels:
        real = None
        if _row_key(lab) in by_label:
            it = by_label[_row_key(lab)][0]
            y = load_clip(it.path, sr, recipe.data.preprocess, mel_cfg.n_fft)
            real = (f"real {it.id}", y, mel_fn(torch.from_numpy(y)[None])[0].numpy())
        seeds = [s for lab2, s in plan if lab2 == lab][:per_label]
        cells[_row_key(lab)] = real, [generated(lab, s) for s in seeds]
    shown = [c[2] for real, fakes in cells.values() for c in ([real] if real else []) + fakes]
    lim = (mel_cfg.log_floor, float(max(x.max() for x in shown)) if shown else 0.0)

    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>specgan report: {html.escape(recipe.name)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>specgan report: {html.escape(recipe.name)}</h1>",
             f"<p class=note>recipe {html.escape(str(recipe.path))}; stage one {html.escape(gen['model'])} "
             f"(step {gen['step']}); vocoder {html.escape(desc)}; split {html.escape(m['split'])}. "
             f"Audio players: <span id=audio-status>not loaded</span></p>"]
    parts.append("<h2>Generation (stage one)</h2>")
    parts.append(f"<p class=note>{html.escape(gen['protocol'])}</p>")
    parts.append(_table([(name, value) for group, name, value in headline_rows(m) if group == "generation"]))
    by_key = gen.get("labels", {})
    if keys:  # several labels: each one's accuracy by its own classifier
        parts.append("<table><tr><th>label</th><th>values</th><th>accuracy generated</th><th>real</th>"
                     "<th>its classifier's test accuracy</th></tr>" + "".join(
                         f"<tr><th>{html.escape(str(k))}</th><td class=num>{v.get('classes', '')}</td>"
                         f"<td class=num>{_fmt(v['generated'])}</td><td class=num>{_fmt(v['real'])}</td>"
                         f"<td class=num>{_fmt(v.get('classifier_test_accuracy', ''))}</td></tr>"
                         for k, v in by_key.items()) + "</table>")
    first = f"{keys[0]}: " if keys else ""
    parts.append(f"<h2>Per label: real vs generated</h2><table><tr><th>{html.escape(first)}label</th><th>label "
                 "accuracy (generated / real)</th><th>real</th><th>generated</th></tr>")
    per = gen.get("label_accuracy_per_label", {})
    for lab, (real, fakes) in cells.items():
        real_cells = _clip(*real[:2], real[2], sr, lim) if real else ""
        gen_cells = "".join(_clip(caption, y, logmel, sr, lim) for caption, y, logmel in fakes)
        acc = per.get(str(lab), {})
        acc_txt = f"{_fmt(acc.get('generated', ''))} / {_fmt(acc.get('real', ''))}" if acc else ""
        parts.append(f"<tr><th>{html.escape(str(lab))}</th><td class=num>{acc_txt}</td><td>{real_cells}</td>"
                     f"<td>{gen_cells}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Vocoder (stage two): copy synthesis</h2>")
    parts.append(f"<p class=note>{html.escape(m['vocoder']['protocol'])}</p>")
    parts.append(_vocoder_table(m["vocoder"]))
    names = [k for k in ("trained", "griffinlim") if k in m["vocoder"]]
    parts.append("<table><tr><th>clip</th><th>ground truth</th>" + "".join(
        f"<th>{'trained vocoder' if n == 'trained' else 'Griffin-Lim'}</th>" for n in names) + "</tr>")
    for i, files in enumerate(m["vocoder"]["examples"]):
        cells = []
        for n, caption in (("truth", "ground truth"), *((n, n) for n in names)):
            if n not in files:
                continue
            y, _ = sf.read(recipe.work / "eval" / files[n], dtype="float32")  # evaluate's own copies
            cells.append(_clip(caption, y, mel_fn(torch.from_numpy(y)[None])[0].numpy(), sr, lim))
        parts.append(f"<tr><th>{i}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts.append(f"<details><summary>metrics.json</summary><pre>{html.escape(json.dumps(m, indent=1))}</pre>"
                 f"</details>{_SCRIPT}</body></html>")
    out = recipe.work / "eval" / "report.html"
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out
