"""specgan: generate audio with GANs (SpecGAN-style WGAN-GP over log-mels + GAN vocoders)."""

__version__ = "0.1.0"


def load_stage_one(path, device="cpu"):
    """Load a trained stage-one generator (see :mod:`specgan.sampling`)."""
    from specgan.sampling import load_stage_one as _load

    return _load(path, device)


def sample(model, n, labels=None, seed=0):
    """``n`` spectrograms from a stage-one model: (normalised, log-mel); see :mod:`specgan.sampling`."""
    from specgan.sampling import sample as _sample

    return _sample(model, n, labels, seed)


def generate(label=None, seed=0, recipe="speech", vocoder=None, duration=None, device="cpu"):
    """One clip from stage one + a vocoder, for a notebook: ``wav, sr = specgan.generate("seven")``.

    Args:
        label: what to generate (``"seven"``, ``60``); None for an unconditional model.
        seed: the noise seed (the same clip as ``specgan synth --seed S --n 1``).
        recipe: a recipe path or a bundled recipe's name (``"speech"``, ``"music"``): its work dir's
            trained models when present, else its shipped ``pretrained:`` ones.
        vocoder: ``"auto"`` (the recipe's trained vocoder, else the shipped one), ``"griffinlim"``,
            a ``model.safetensors`` path or run folder; None: the recipe's ``synth.vocoder``.
        duration: seconds (default: the recipe's clip length, at most the model's span).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.

    Returns:
        (waveform, sample_rate): a float32 numpy array (samples,) in [-1, 1], and its rate in Hz.
    """
    import torch

    from specgan.recipe import Recipe, load_recipe
    from specgan.sampling import sample as _sample
    from specgan.synth import load_vocoder, resolve_stage_one
    from specgan.training import pick_device

    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    dev = pick_device(device)
    path = resolve_stage_one(r)
    model = load_stage_one(path, dev)
    voc, desc = load_vocoder(r, vocoder or r.synth.vocoder, model.mel_cfg, dev)
    voc.mel_cfg.check_compatible(model.mel_cfg, f"vocoder {desc}", f"stage-one model {path}")
    if label is None and model.generator.n_classes > 0:
        raise ValueError(f"{path} is conditional: give a label, one of {', '.join(map(str, model.vocab))}")
    if label is not None:
        model.label_index(label)  # an unknown label names the known ones
    span = model.generator.frames * model.mel_cfg.hop_length
    duration = duration if duration is not None else (r.synth.duration or r.data.preprocess.clip_seconds)
    length = span if duration is None else int(round(duration * model.mel_cfg.sample_rate))
    if not 0 < length <= span:
        raise ValueError(f"duration {duration}: this model generates at most {span / model.mel_cfg.sample_rate:.3f} s")
    with torch.inference_mode():
        _, logmel = _sample(model, 1, label, seed=seed)
        wav = voc(logmel[0].float())
    wav = wav.reshape(-1)[:length].clamp(-1, 1).cpu().numpy()
    return wav, model.mel_cfg.sample_rate


def shipped(name, stage="vocoder"):
    """The path of a shipped model from any folder and after ``pip install``: ``shipped("speech")``
    is ``pretrained/speech/vocoder.safetensors`` (``stage="specgan"``: its stage-one model), for
    ``vocoder.load(specgan.shipped("speech"))``; an unknown name lists the shipped ones."""
    from specgan.recipe import bundled_dir

    if stage not in ("vocoder", "specgan"):
        raise ValueError(f"shipped: stage must be 'vocoder' or 'specgan', got {stage!r}")
    path = bundled_dir() / "pretrained" / str(name) / f"{stage}.safetensors"
    if not path.is_file():
        have = sorted(p.parent.name for p in (bundled_dir() / "pretrained").glob(f"*/{stage}.safetensors"))
        raise FileNotFoundError(f"shipped({name!r}): no shipped {stage} of that name; shipped: {', '.join(have)}")
    return path
