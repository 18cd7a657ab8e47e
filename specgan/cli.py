"""The ``specgan`` command: one sub-command per pipeline stage.

Every sub-command takes ``--recipe PATH`` and any number of ``--set key.path=value``
overrides; it writes under the recipe's ``work_dir`` and skips work that is already done.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import threading
import traceback
import warnings
from pathlib import Path

from specgan import __version__

log = logging.getLogger("specgan")


def _set_threads(n: int) -> None:
    """One knob for every thread pool we use (see PERF notes: 1 thread is the safe default)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    import torch

    torch.set_num_threads(n)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True,
                   help="recipe YAML, e.g. recipes/tiny.yaml; a bundled recipe by name (music.yaml, speech) "
                        "from any folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a recipe key (repeatable), e.g. --set features.workers=1")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per process (default 1, or the recipe's features.threads for `features`)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: a plain line every 30 s per long step instead (for logs)")


def _load(args):
    from specgan.recipe import load_recipe

    return load_recipe(args.recipe, args.overrides)


def _check_device(args) -> None:
    """``--device`` checked before any work (``cuda`` without a GPU is one line, not a late failure)."""
    from specgan.training import pick_device

    pick_device(args.device)


def _writer(recipe, args):
    """Hold the work dir's lock (see :mod:`specgan.workdir`) while a command writes it."""
    import shlex

    from specgan.workdir import work_dir_lock

    return work_dir_lock(recipe.work, shlex.join(["specgan", *getattr(args, "argv", [args.command])])[:300])


def cmd_prepare(args) -> int:
    from specgan.data.prepare import prepare

    recipe = _load(args)
    with _writer(recipe, args):
        report = prepare(recipe, force=args.force)
    if report.get("skipped_stage"):
        print(f"prepare: up to date in {recipe.work / 'data'} (use --force to rebuild)")
    else:
        print(f"prepare: {recipe.data.source} → {recipe.work / 'data'}: "
              + ", ".join(f"{k} {v}" for k, v in report["counts"].items()) + f"; {report['skipped']}")
    return 0


def cmd_features(args) -> int:
    from specgan.features.cache import run_features

    recipe = _load(args)
    if args.workers is not None:
        recipe.features.workers = args.workers
    if args.threads is not None:
        recipe.features.threads = args.threads
    with _writer(recipe, args):
        report = run_features(recipe, force=args.force)
    for split, r in report.items():
        if split != "stats":
            print(f"features/{split}: {r['items']} items ({r['extracted']} extracted, {r['reused']} reused "
                  f"from cache); {r['skipped']}")
    print(f"stats: {'recomputed' if report['stats']['recomputed'] else 'reused'} → {report['stats']['path']}")
    return 0


def cmd_train(args) -> int:
    recipe = _load(args)
    _check_device(args)
    # Under torchrun every rank runs this command on the same work dir: rank 0 holds the lock for all.
    with _writer(recipe, args) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext():
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return _train_distributed(args, recipe)
        result = _train_stage(args, recipe, args.device)
    shown = ("dev/",) if args.stage in ("vocoder", "enhance", "codec") else ("critic/", "gen/")
    if result.get("up_to_date"):
        print(f"{args.stage}: up to date at step {result['step']} in {result['out']} "
              f"(--steps N to train further)")
    else:
        print(f"{args.stage}: step {result['step']} → {result['out']}; "
              + ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k.startswith(shown)))
    return 0


def cmd_run(args) -> int:
    from specgan.pipeline import parse_stage, run

    recipe = _load(args)
    _check_device(args)
    with _writer(recipe, args):
        run(recipe, parse_stage(args.stage), parse_stage(args.stop_stage), force=args.force, device=args.device,
            progress=not args.no_progress)
    return 0


def _seed(text: str) -> int:
    """A seed: 0 ... 2**32 - 1 (numpy's and torch's common range), checked before any work."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: a whole number 0 ... 4294967295") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: 0 ... 4294967295 (clip i uses seed + i)")
    return value


def _draw_settings(recipe, args) -> None:
    """``--truncation`` over ``synth.truncation`` (one line when out of (0, 1]) and ``--smoothing``
    over ``synth.smoothing`` (one line when out of [0, 1/3]).
    """
    from specgan.stage_one.model import check_smoothing, check_truncation

    if getattr(args, "truncation", None) is not None:
        recipe.synth.truncation = check_truncation(args.truncation)
    if getattr(args, "smoothing", None) is not None:
        recipe.synth.smoothing = check_smoothing(args.smoothing)


def cmd_synth(args) -> int:
    from specgan.stage_one.labels import parse_label_args
    from specgan.synth import MAX_CUT_DB, synth

    recipe = _load(args)
    _check_device(args)
    _draw_settings(recipe, args)
    labels = parse_label_args(args.label)
    out = Path(args.out) if args.out else recipe.work / "synth"
    # --out outside the work dir writes nothing there: no lock, so it can run beside a training
    inside = out.resolve().is_relative_to(recipe.work.resolve())
    with _writer(recipe, args) if inside else contextlib.nullcontext():
        result = synth(recipe, n=args.n, labels=labels, seed=args.seed, vocoder_name=args.vocoder, out=out,
                       duration=args.duration, interpolate=tuple(args.interpolate) if args.interpolate else None,
                       points=args.points, device=args.device, progress=not args.no_progress)
    print(f"synth: {len(result.wavs)} WAVs → {result.out} (stage one {result.stage_one}; vocoder {result.vocoder}); "
          f"mels.npy, grid.png, synth.json beside them")
    if result.scaled:
        bursts = {k: v["clipped"] for k, v in result.scaled.items() if "clipped" in v}
        print(f"synth: {len(result.scaled)} of {len(result.wavs)} clips rebuilt past full scale and were scaled down "
              f"(by up to {-min(v['gain_db'] for v in result.scaled.values()):.1f} dB) instead of clipped"
              + (f"; {len(bursts)} still clip ({sum(bursts.values())} samples): their rebuild peaks more than "
                 f"{MAX_CUT_DB:g} dB past full scale" if bursts else "") + "; synth.json gives each clip's gain_db")
    return 0


def cmd_vocode(args) -> int:
    from specgan.synth import vocode_files

    recipe = _load(args) if args.recipe else None
    _check_device(args)
    paths = vocode_files(args.inputs, args.vocoder, recipe, out=args.out, chunk_frames=args.chunk_frames,
                         device=args.device)
    print(f"vocode: {len(paths)} WAVs → {args.out}")
    return 0


def cmd_enhance(args) -> int:
    from specgan.enhancement.files import enhance_paths
    from specgan.training import pick_device

    recipe = _load(args)
    _check_device(args)
    result = enhance_paths(recipe, args.inputs, out=args.out, force=args.force, model=args.model,
                           vocoder=args.vocoder, device=str(pick_device(args.device)),
                           progress=not args.no_progress, synthesis=args.synthesis)
    skipped = f"; {len(result['failed'])} skipped (named above)" if result["failed"] else ""
    print(f"enhance: {len(result['written'])} WAVs → {args.out} (enhancer {result['model']}; vocoder "
          f"{result['vocoder']}; 16-bit WAV at {recipe.mel.sample_rate} Hz){skipped}")
    return 1 if result["failed"] else 0


def _codec_job(args, recipe, need_vocoder: bool):
    from specgan.codec.inference import recipe_job
    from specgan.training import pick_device

    job, path, _, desc = recipe_job(recipe, args.model, args.vocoder if need_vocoder else None,
                                    str(pick_device(args.device)))
    return job, path, desc


def _codec_output(src: Path, out: str | None, suffix: str, force: bool) -> Path:
    """``-o`` or the input's name with ``suffix`` beside it; never the input, never an existing file
    without --force.
    """
    dst = Path(out) if out else src.with_suffix(suffix)
    if dst.resolve() == src.resolve():
        raise ValueError(f"{dst}: the output would overwrite the input; give another -o")
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; --force replaces it")
    return dst


def cmd_encode(args) -> int:
    recipe = _load(args)
    _check_device(args)
    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    job, path, _ = _codec_job(args, recipe, need_vocoder=False)
    job.quantisers_for(args.bitrate)  # a bitrate the model lacks: said before anything else
    dst = _codec_output(src, args.output, ".sgc", args.force)
    r = job.encode_file(src, dst, args.bitrate)
    print(f"encode: {src} → {dst}: {r['seconds']:.2f} s at {r['bitrate_nominal'] / 1000:.3g} kbps nominal "
          f"({r['n_q']} quantisers), {r['bytes']} bytes = {r['bitrate_actual'] / 1000:.3g} kbps with the header "
          f"(codec {path})")
    return 0


def cmd_decode(args) -> int:
    recipe = _load(args)
    _check_device(args)
    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    dst = _codec_output(src, args.output, ".decoded.wav" if src.suffix == ".sgc" else ".wav", args.force)
    job, path, desc = _codec_job(args, recipe, need_vocoder=True)
    r = job.decode_file(src, dst)
    print(f"decode: {src} → {dst}: {r['seconds']:.2f} s, 16-bit WAV at {job.mel_cfg.sample_rate} Hz "
          f"({r['n_q']} quantisers; codec {path}; vocoder {desc})")
    return 0


def cmd_augment(args) -> int:
    from specgan.augment import augment
    from specgan.stage_one.labels import parse_label_args
    from specgan.training import pick_device

    recipe = _load(args)
    _check_device(args)
    _draw_settings(recipe, args)
    result = augment(recipe, args.per_class, args.out, labels=parse_label_args(args.label), seed=args.seed,
                     vocoder_name=args.vocoder, filter_tau=args.filter, force=args.force,
                     device=str(pick_device(args.device)), progress=not args.no_progress)
    dropped = sum(result["dropped"].values())
    kept = f"; --filter {args.filter}: {dropped} of {result['drawn']} drawn dropped " \
        f"({', '.join(f'{k} {v}' for k, v in result['dropped'].items()) or 'none'})" if args.filter is not None else ""
    print(f"augment: {result['clips']} WAVs ({result['per_class']} per class x {result['classes']}) → {args.out}, "
          f"manifest.jsonl beside them (stage one {result['stage_one']}; vocoder {result['vocoder']}){kept}")
    return 0


def cmd_evaluate(args) -> int:
    from specgan.evaluate import evaluate, summary_lines

    recipe = _load(args)
    if recipe.task == "enhance":  # the enhancer on the unseen speaker and noise types
        from specgan.enhancement.evaluate import evaluate_enhancement

        with _writer(recipe, args):
            evaluate_enhancement(recipe, vocoder=args.vocoder, report=print)
        print(f"evaluate: → {recipe.work / 'eval' / 'enhance.json'}")
        return 0
    if recipe.task == "codec":  # the codec against Opus and Codec2 on the unseen speaker
        from specgan.codec.evaluate import evaluate_codec

        with _writer(recipe, args):
            evaluate_codec(recipe, vocoder=args.vocoder, report=print)
        print(f"evaluate: → {recipe.work / 'eval' / 'codec.json'}")
        return 0
    if recipe.task == "augment":  # the low-resource experiment: a recogniser per K-shot cell and condition
        from specgan.kshot import evaluate_kshot, summary_table

        from specgan.report import write_report

        with _writer(recipe, args):
            out = evaluate_kshot(recipe, report=print)
            page = write_report(recipe)
        print(f"evaluate: → {out['path']} (.md, .png beside it), {page}")
        print(summary_table(out))
        return 0
    with _writer(recipe, args):
        out = evaluate(recipe, vocoder_name=args.vocoder, report=print)
    print(f"evaluate: → {out['path']}")
    print(summary_lines(out))
    return 0


def cmd_report(args) -> int:
    from specgan.report import write_report

    recipe = _load(args)
    with _writer(recipe, args):
        path = write_report(recipe, vocoder_name=args.vocoder)
    print(f"report: → {path}")
    return 0


def cmd_export(args) -> int:
    from specgan.checkpoints import load_vocoder
    from vocoder.export import export_onnx

    g, _ = load_vocoder(None, args.vocoder, None)  # a model.safetensors, its run folder or a shipped name
    path = export_onnx(g, args.onnx, opset=args.opset)
    head = "(mel → magnitude, phase; run the iSTFT outside: vocoder.export.OnnxVocoder does)" \
        if g.stft is not None else "(mel → waveform)"
    print(f"export: {args.vocoder} → {path} {head}")
    return 0


def _train_stage(args, recipe, device: str) -> dict:
    """``specgan train``: one stage through the shared skip/resume policy (specgan.training)."""
    from specgan.training import train_codec, train_enhancer, train_specgan, train_vocoder

    if args.out and args.stage != "vocoder":
        raise ValueError("--out applies to --stage vocoder only")
    if recipe.task == "augment" and args.stage == "specgan":
        raise ValueError(f"{recipe.path}: an augment recipe trains one GAN per K-shot cell: `specgan run --recipe "
                         f"{recipe.path} --stage specgan --stop-stage specgan` (docs/augment.md)")
    if args.stage in ("enhance", "codec"):
        train_other = train_enhancer if args.stage == "enhance" else train_codec
        return train_other(recipe, steps=args.steps, resume=args.resume, device=device, init_from=args.init_from,
                           progress=not args.no_progress, mode="train", force=args.force)
    train = train_vocoder if args.stage == "vocoder" else train_specgan
    kwargs = {"out": args.out} if args.stage == "vocoder" else {}
    return train(recipe, steps=args.steps, resume=args.resume, init_from=args.init_from, device=device,
                 progress=not args.no_progress, mode="train", force=args.force, **kwargs)


def _train_distributed(args, recipe) -> int:
    """Under torchrun: one process per rank (gloo on CPU, nccl on CUDA), either stage; rank 0 reports."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        result = _train_stage(args, recipe, f"cuda:{local}" if cuda else "cpu")
    finally:
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.stage}: step {result['step']} → {result['out']} ({os.environ['WORLD_SIZE']} processes)")
    return 0


def cmd_recipe(args) -> int:
    """Print the resolved recipe (every default filled)."""
    import yaml

    from specgan.recipe import to_dict

    print(yaml.safe_dump(to_dict(_load(args)), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specgan",
        description="Generate audio with GANs: recipes run stage by stage "
                    "(prepare → features → train → synth → evaluate).",
    )
    parser.add_argument("--version", action="version", version=f"specgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="stage 0: build or scan the dataset into data/{train,dev,test}.jsonl",
                       description="Stage 0: render a builtin dataset (builtin:digits via espeak-ng, flite and "
                                   "festival; builtin:notes via fluidsynth; builtin:voices: recorded "
                                   "and TTS speech; builtin:music: notes + music21 excerpts) or scan a "
                                   "corpus (sc09:, nsynth:, ljspeech:, folder) into manifests under "
                                   "<work_dir>/data.")
    _common(p)
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("features", help="stage 1: extract log-mels (numba) into features/, with train statistics",
                       description="Stage 1: extract log-mel features of every split into "
                                   "<work_dir>/features/{split}/*.npy, reusing cached items whose audio "
                                   "and config are unchanged; per-bin statistics from train only.")
    _common(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: features.workers)")
    p.add_argument("--force", action="store_true", help="re-extract everything")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="stages 2-3: train stage one (--stage specgan) or the vocoder (--stage vocoder)",
                       description="--stage specgan: the WGAN-GP on the cached features into <work_dir>/specgan "
                                   "(model.safetensors = EMA generator, state.pt, samples/*.png, history.jsonl). "
                                   "--stage vocoder: the recipe's vocoder on its prepared audio into "
                                   "<work_dir>/vocoder (model.safetensors, best/, state.pt, logs/, history.jsonl).")
    _common(p)
    p.add_argument("--stage", required=True, choices=["specgan", "vocoder", "enhance", "codec"],
                   help="what to train (enhance: the enhancement GAN of an enhance recipe, into <work_dir>/enhance; "
                        "codec: the mel codec of a codec recipe, into <work_dir>/codec)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps: train until this many (default: specgan.steps or vocoder.steps, "
                        "by --stage)")
    p.add_argument("--resume", action="store_true",
                   help="require a checkpoint to continue (an unfinished run of the same recipe resumes anyway)")
    p.add_argument("--force", action="store_true",
                   help="train from scratch (the previous run is kept as <name>.prev/); also retrains a run "
                        "whose architecture, mel or data changed")
    p.add_argument("--init-from", default=None, metavar="STATE_PT",
                   help="fine-tuning: initialise generator and critics from another run's state.pt of the same "
                        "stage; the vocoder, codec and enhance stages also take a model file or a run folder "
                        "(e.g. a shipped pretrained/... file; its critics start fresh)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--out", default=None, help="--stage vocoder only: output folder (default <work_dir>/vocoder)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="run the recipe's stages in order (0 prepare ... 5 evaluate)",
                       description="Stages: 0 prepare, 1 features, 2 specgan (train stage one), 3 vocoder (train "
                                   "stage two), 4 synth, 5 evaluate. Each skips work that is up to date and says so; "
                                   "an unfinished training resumes from its state.pt.")
    _common(p)
    p.add_argument("--stage", default="0", help="first stage, number or name (default 0)")
    p.add_argument("--stop-stage", default="5", help="last stage, number or name (default 5)")
    p.add_argument("--force", action="store_true",
                   help="redo the selected stages (a training run is kept as <name>.prev/)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("synth", help="stage 4: generate WAVs with stage one + a vocoder",
                       description="Sample the stage-one generator (the work dir's, else the recipe's pretrained "
                                   "one) and vocode: WAVs, mels.npy (log-mels), grid.png and synth.json into "
                                   "--out (default <work_dir>/synth).")
    _common(p)
    p.add_argument("--n", type=int, default=None, help="number of clips (default synth.n)")
    p.add_argument("--label", action="append", default=None,
                   help="label(s) to generate, e.g. seven or 60 (repeatable: labels in turn; default: every label "
                        "in turn). Several-label recipes: key=value, e.g. --label pitch=60 --label instrument=violin "
                        "(a key left out is drawn from the training distribution)")
    p.add_argument("--seed", type=_seed, default=None, help="clip i uses seed + i (default synth.seed)")
    p.add_argument("--vocoder", default=None,
                   help="auto | griffinlim | a model.safetensors path or run folder (default synth.vocoder)")
    p.add_argument("--out", default=None, help="output folder (default <work_dir>/synth)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per clip, at most the model's span (default data.preprocess.clip_seconds)")
    p.add_argument("--truncation", type=float, default=None, metavar="PSI",
                   help="scale every latent by PSI in (0, 1]: fewer atypical clips, less variety (default "
                        "synth.truncation)")
    p.add_argument("--smoothing", type=float, default=None, metavar="A",
                   help="smooth each drawn mel along time, a frame = A*prev + (1-2A)*itself + A*next, A in "
                        "[0, 1/3] (0: as drawn; default synth.smoothing)")
    p.add_argument("--interpolate", type=_seed, nargs=2, metavar=("SEED_A", "SEED_B"), default=None,
                   help="write a latent walk between two seeds instead of --n clips")
    p.add_argument("--points", type=int, default=8,
                   help=f"WAVs on the --interpolate walk (2 to {100_000}; default 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("vocode", help="stage 4 (vocoder only): WAV or log-mel .npy files through a vocoder",
                       description="Each input .wav is turned into the vocoder's log-mel and back; each .npy must "
                                   "hold a (n_mels, frames) log-mel, or a stack (N, n_mels, frames) such as "
                                   "synth's mels.npy, in the vocoder's mel settings. Long inputs run in "
                                   "overlapping, cross-faded chunks (bounded memory).")
    p.add_argument("inputs", nargs="+", help=".wav or .npy files (synth's mels.npy: one WAV per row)")
    p.add_argument("--vocoder", required=True,
                   help="a model.safetensors path or run folder, a shipped vocoder (speech, music), or griffinlim")
    p.add_argument("--recipe", default=None, help="recipe (needed for griffinlim: its mel settings)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.add_argument("--out", default="vocoded",
                   help="output folder (default: ./vocoded); one <stem>.wav per input (<stem>_000.wav ... per "
                        "row of an (N, n_mels, frames) .npy), -2, -3 ... added when names collide; an output "
                        "that would replace an input is refused")
    p.add_argument("--chunk-frames", type=int, default=512, help="frames per chunk for long inputs")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, help="threads (default 1)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    p.set_defaults(func=cmd_vocode)

    p = sub.add_parser("enhance", help="noisy speech in, enhanced speech out (an enhance recipe's model)",
                       description="Enhance audio files and folders (recursively) with the recipe's enhancer "
                                   "(<work_dir>/enhance, else pretrained.enhance) and vocoder; any rate and channel "
                                   "count in, 16-bit mono WAV at the recipe's rate out (mel.sample_rate: 16 kHz for "
                                   "the shipped model), into --out with the input's name. Inputs are never written; "
                                   "an unreadable file is reported and skipped, the others are still done.")
    _common(p)
    p.add_argument("inputs", nargs="+", help="audio files and/or folders")
    p.add_argument("--out", default="enhanced", help="output folder (default ./enhanced)")
    p.add_argument("--force", action="store_true", help="replace outputs that exist (never an input)")
    p.add_argument("--model", default=None, help="an enhancer model.safetensors or run folder (default: the recipe's)")
    p.add_argument("--vocoder", default="auto", help="auto | griffinlim | a model.safetensors path (default auto)")
    p.add_argument("--synthesis", default=None, choices=["vocoder", "gain"],
                   help="vocoder: the vocoder renders the enhanced mel; gain: the enhancer's gains on the noisy "
                        "STFT with its phase, no vocoder (default: the recipe's enhance.synthesis)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("encode", help="audio in, a .sgc codec file out (a codec recipe's model)",
                       description="Encode one audio file (any rate and channel count: downmixed, resampled to the "
                                   "recipe's rate) into the codec's bitstream at --bitrate (the model's nearest rate "
                                   "at or below it). The input is never written; -o defaults to the input's name "
                                   "with .sgc. docs/codec.md describes the file format.")
    _common(p)
    p.add_argument("input", help="an audio file")
    p.add_argument("-o", "--output", default=None, help="the .sgc file (default: the input's name with .sgc)")
    p.add_argument("--bitrate", required=True, help="bits per second: 3k, 1.5k, 2400 ...")
    p.add_argument("--model", default=None, help="a codec model.safetensors or run folder (default: the recipe's)")
    p.add_argument("--force", action="store_true", help="replace an existing output (never the input)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="a .sgc codec file in, a WAV out (the codec's decoder and the vocoder)",
                       description="Decode a .sgc file made by `specgan encode` with the same model into a 16-bit "
                                   "mono WAV at the recipe's rate, the original's length. A file of another model, "
                                   "a truncated or a foreign file is refused in one line.")
    _common(p)
    p.add_argument("input", help="a .sgc file")
    p.add_argument("-o", "--output", default=None, help="the WAV (default: the input's name with .decoded.wav)")
    p.add_argument("--model", default=None, help="a codec model.safetensors or run folder (default: the recipe's)")
    p.add_argument("--vocoder", default="auto", help="auto | griffinlim | a model.safetensors path (default auto)")
    p.add_argument("--force", action="store_true", help="replace an existing output (never the input)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("augment", help="labelled generated clips for a recogniser: <out>/<class>/*.wav + manifest",
                       description="Generate --per-class clips of every class (the recipe's label; with several "
                                   "labels, the first's values, the others drawn per clip) into <out>/<class>/, the "
                                   "layout folder.yaml reads, with manifest.jsonl (labels, seed, model files, "
                                   "vocoder). --filter keeps only clips the recipe's evaluation classifier assigns "
                                   "to the asked class with at least that probability, and counts the drops.")
    _common(p)
    p.add_argument("--per-class", type=int, required=True, help="clips per class")
    p.add_argument("--out", required=True, help="output folder (new or empty; --force replaces it)")
    p.add_argument("--label", action="append", default=None,
                   help="classes to generate (repeatable; default: all); several-label recipes: key=value")
    p.add_argument("--seed", type=_seed, default=0, help="clip i uses seed + i (default 0)")
    p.add_argument("--vocoder", default="auto", help="auto | griffinlim | a model.safetensors path (default auto)")
    p.add_argument("--truncation", type=float, default=None, metavar="PSI",
                   help="scale every latent by PSI in (0, 1], as synth does (default synth.truncation)")
    p.add_argument("--smoothing", type=float, default=None, metavar="A",
                   help="smooth each drawn mel along time, as synth does (default synth.smoothing)")
    p.add_argument("--filter", type=float, default=None, metavar="TAU",
                   help="keep clips the evaluation classifier gives the asked class probability >= TAU")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out (kept as <out>.prev/)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("evaluate", help="stage 5: generation and vocoder metrics → eval/metrics.json",
                       description="Generation: the project classifier's IS / FID / label accuracy (trained on the "
                                   "real train split if missing), NDB/JSD, diversity, nearest-train distance, pitch "
                                   "accuracy for pitch labels. Vocoder: copy synthesis of the held-out split (mel-L1, "
                                   "MR-STFT, F0, V/UV, PESQ/STOI for speech) beside Griffin-Lim.")
    _common(p)
    p.add_argument("--vocoder", default="auto", help="auto | a model.safetensors path or run folder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="after stage 5: eval/report.html: metrics, audio players, spectrograms",
                       description="A self-contained HTML page (WAVs and images embedded) presenting what synth and "
                                   "evaluate wrote: eval/metrics.json's tables, real vs generated clips per label "
                                   "(synth's own files where it wrote them), evaluate's vocoder A/B against "
                                   "Griffin-Lim (its copies in eval/copy).")
    _common(p)
    p.add_argument("--vocoder", default="auto",
                   help="the generated clips' vocoder (auto | a model.safetensors path or run folder): synth's files "
                        "when synth used it, else drawn; the A/B plays evaluate's copies")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="after stage 3: export a trained vocoder to ONNX",
                       description="Export a vocoder checkpoint (model.safetensors) to ONNX with dynamic batch and "
                                   "frame axes. The istft generator exports up to magnitude and phase (torch.istft "
                                   "has no ONNX form); vocoder.export.OnnxVocoder runs either kind.")
    p.add_argument("--vocoder", required=True,
                   help="a trained vocoder: its model.safetensors or run folder (e.g. exp/speech/vocoder)")
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors")
    p.add_argument("--threads", type=int, default=None, help="threads (default 1)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("recipe", help="print a recipe resolved (defaults filled, overrides applied)",
                       description="Validate a recipe and print it with every default filled in.")
    _common(p)
    p.set_defaults(func=cmd_recipe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    _set_threads(max(1, args.threads or 1))
    import specgan.progress

    specgan.progress.ENABLED = not getattr(args, "no_progress", False)  # per command, not sticky
    if not args.verbose:  # third-party chatter stays out of stage output (-v shows it)
        for module in (r"pystoi(\.|$)", r"scipy\.linalg", r"torch\.onnx", r"torch\.jit"):
            warnings.filterwarnings("ignore", module=module)
        warnings.filterwarnings("ignore", message=r".*[Tt]racer[Ww]arning.*")
    from specgan.audio import AudioError
    from specgan.data.manifest import MissingToolError
    from specgan.recipe import RecipeError
    from specgan.workdir import WorkDirBusy

    import signal

    def _terminated(signum, frame):  # SIGTERM unwinds like Ctrl-C, so staging folders are removed
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _terminated) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        if args.verbose:
            traceback.print_exc()
        how = "terminated (SIGTERM)" if isinstance(e, _Terminated) else "interrupted (Ctrl-C)"
        print(f"specgan {args.command}: {how}; finished outputs are kept, an unfinished training "
              f"resumes from its last state.pt when run again", file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    except (RecipeError, MissingToolError, AudioError, WorkDirBusy, ValueError, OSError, MemoryError,
            FloatingPointError, RuntimeError) as e:
        message = user_error(e)
        if message is None:  # a bug, not a user's mistake: the traceback is the report
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"specgan {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (staging folders, locks) run."""


def _oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(e, RuntimeError) and any(s in str(e) for s in ("out of memory", "can't allocate memory")))


def user_error(e: BaseException) -> str | None:
    """One line for an error a user can cause (naming the file or key and what to do), or None for
    anything else (a bug: its traceback is shown).
    """
    from specgan.data.manifest import MissingToolError
    from specgan.workdir import WorkDirBusy

    if _oom(e):
        return ("out of memory; lower the batch size (--set specgan.batch_size=..., vocoder.batch_size), "
                "--n, --points or --chunk-frames, or use a machine with more memory "
                f"({' '.join(str(e).split())[:200] or type(e).__name__})")
    if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, FileExistsError)) or \
            isinstance(e, (FileNotFoundError, FileExistsError)) and e.filename is not None:
        name = e.filename or "a file"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{name}: disk full (or over quota); free some space or write elsewhere (--out, work_dir)"
        if e.errno == errno.ENAMETOOLONG:
            return f"{str(name)[:120]}...: file name too long for this filesystem; use a shorter name or folder"
        if e.errno in (errno.EISDIR, errno.ENOTDIR):
            return f"{name}: {e.strerror}; give a file where a file is expected and a folder where a folder is"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{name}: {e.strerror}; write somewhere you may (--out, --set work_dir=...)"
        return f"{name}: {e.strerror or e}"
    if isinstance(e, FloatingPointError):
        return " ".join(str(e).split())
    if isinstance(e, (ValueError, FileNotFoundError, FileExistsError, MissingToolError, WorkDirBusy)):
        return " ".join(str(e).split())
    return None


if __name__ == "__main__":
    sys.exit(main())
