"""specgan: generate audio with GANs (SpecGAN-style WGAN-GP over log-mels + GAN vocoders)."""

__version__ = "0.1.0"


def load_stage_one(path, device="cpu"):
    """Load a trained stage-one model (a :class:`specgan.stage_one.StageOne`: ``.sample(labels, seeds)``
    gives log-mels for any vocoder in its mel); see :mod:`specgan.stage_one.model`.
    """
    from specgan.stage_one import load

    return load(path, device)


def generate(label=None, seed=0, recipe="speech", vocoder=None, duration=None, device="cpu", truncation=None,
             smoothing=None, **labels):
    """One clip from stage one + a vocoder, for a notebook: ``wav, sr = specgan.generate("seven")``,
    or with several labels ``specgan.generate(recipe="music", pitch=60, instrument="violin")``.

    Args:
        label: what to generate (``"seven"``, ``60``); None for an unconditional model (or, with
            several labels, when they are given as keywords).
        seed: the noise seed (the same clip as ``specgan synth --seed S --n 1``).
        recipe: a recipe path or a bundled recipe's name (``"speech"``, ``"music"``): its work dir's
            trained models when present, else its shipped ``pretrained:`` ones.
        vocoder: ``"auto"`` (the recipe's trained vocoder, else the shipped one), ``"griffinlim"``,
            a ``model.safetensors`` path or run folder; None: the recipe's ``synth.vocoder``.
        duration: seconds (default: the recipe's clip length, at most the model's span).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
        truncation: ψ in (0, 1], the factor the latent is scaled by; None: the recipe's
            ``synth.truncation`` (as synth draws).
        smoothing: the neighbouring frames' weight in [0, 1/3] when the drawn mel is smoothed along
            time (0: as drawn); None: the recipe's ``synth.smoothing``.
        **labels: a several-label model's labels by key (``pitch=60, instrument="violin"``); a key
            left out is drawn from the training distribution, from ``seed``.

    Returns:
        (waveform, sample_rate): a float32 numpy array (samples,) in [-1, 1], and its rate in Hz; a
        rebuild past full scale is scaled down as ``specgan synth`` scales it
        (:func:`specgan.synth.protect_peak`), so the samples are the synth file's.
    """
    import torch

    from specgan.checkpoints import load_pair
    from specgan.recipe import Recipe, load_recipe
    from specgan.training import pick_device

    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    pair = load_pair(r, vocoder or r.synth.vocoder, pick_device(device))
    model, voc, path = pair.stage_one, pair.vocoder, pair.stage_one_path
    if truncation is not None:
        from specgan.stage_one.model import check_truncation

        model.truncation = check_truncation(truncation)
    if smoothing is not None:
        from specgan.stage_one.model import check_smoothing

        model.smoothing = check_smoothing(smoothing)
    if labels:
        if label is not None:
            raise ValueError(f"give the label positionally or by key ({', '.join(labels)}), not both")
        label = labels
    if label is None and model.conditional and not model.labels.multi:
        raise ValueError(f"{path} is conditional: give a label, one of {', '.join(map(str, model.vocab))}")
    if label is not None:
        model.label_index(label)  # an unknown label names the known ones
    span = model.generator.frames * model.mel_cfg.hop_length
    duration = duration if duration is not None else (r.synth.duration or r.data.preprocess.clip_seconds)
    length = span if duration is None else int(round(duration * model.mel_cfg.sample_rate))
    if not 0 < length <= span:
        raise ValueError(f"duration {duration}: this model generates at most {span / model.mel_cfg.sample_rate:.3f} s")
    from specgan.synth import edge_repair, vocode_protected

    with torch.inference_mode():
        logmel = model.sample(label, seeds=[seed])
    wav, _, _ = vocode_protected(voc, logmel[:1], length, edge_repair(r, model.mel_cfg))  # as synth writes it
    return wav, model.mel_cfg.sample_rate


def enhance(wav, sr, recipe="enhance", model=None, vocoder="auto", device="cpu", synthesis=None):
    """Enhance noisy speech in a notebook: ``clean, rate = specgan.enhance(noisy, 44100)``.

    Args:
        wav: the waveform, (samples,) or (samples, channels), float.
        sr: its sample rate (any; resampled to the recipe's).
        recipe: an enhance recipe path or bundled name: its trained enhancer (``<work_dir>/enhance``)
            or its ``pretrained.enhance``.
        model: an enhancer ``model.safetensors`` (or run folder) instead of the recipe's.
        vocoder: ``"auto"`` (the recipe's), ``"griffinlim"`` or a vocoder file.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
        synthesis: ``"vocoder"`` or ``"gain"`` (the noisy phase, no vocoder); default the recipe's
            ``enhance.synthesis``.

    Returns:
        (waveform, sample_rate): the enhanced mono float32 waveform at the recipe's rate (16 kHz for
        the speech recipes), as long as the input, and that rate.
    """
    from specgan.enhancement.inference import recipe_job
    from specgan.recipe import Recipe, load_recipe
    from specgan.training import pick_device

    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    job = recipe_job(r, model, vocoder, pick_device(device), synthesis)[0]
    return job.enhance(wav, sr)


def shipped(name, stage="vocoder"):
    """The path of a shipped model from any folder and after ``pip install``: ``shipped("speech")``
    is ``pretrained/speech/vocoder.safetensors`` (``stage="specgan"``: its stage-one model), for
    ``vocoder.load(specgan.shipped("speech"))``; an unknown name lists the shipped ones.
    """
    from specgan.checkpoints import shipped as _shipped

    return _shipped(name, stage)
