"""Enhancement: noise, pairs, the mel → mel GAN, streaming inference, and `specgan enhance` at the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import clean_speech_recipe, speechy

from specgan.enhancement.config import EnhanceConfig
from specgan.enhancement.data import PairSource, fixed_pairs
from specgan.enhancement.model import MelUNet, PairCritic
from specgan.enhancement.noise import KINDS, make_noise, mix, snr_db
from vocoder.mel import MelConfig

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
MEL = MelConfig(sample_rate=SR, n_fft=1024, hop_length=256, win_length=1024, n_mels=64, fmin=0.0, fmax=8000.0)


def test_every_noise_is_seeded_unit_rms_and_has_its_colour():
    pool = [speechy(1.5, f0=100 + 20 * i, seed=i) for i in range(6)]
    for kind in KINDS:
        a = make_noise(kind, 8000, SR, np.random.default_rng(1), pool=pool)
        b = make_noise(kind, 8000, SR, np.random.default_rng(1), pool=pool)
        assert a.dtype == np.float32 and np.array_equal(a, b)
        assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)

    def low_share(kind):  # the share of the power below 500 Hz
        spec = np.abs(np.fft.rfft(make_noise(kind, SR, SR, np.random.default_rng(2)))) ** 2
        return spec[:500].sum() / spec.sum()

    assert low_share("white") < 0.1 < low_share("pink") < low_share("brown")
    hum = np.abs(np.fft.rfft(make_noise("hum", SR, SR, np.random.default_rng(3))))
    assert np.argmax(hum[40:70]) + 40 in range(49, 62)  # the mains fundamental, 50 or 60 Hz ± 1 %
    bursts = make_noise("bursts", 2 * SR, SR, np.random.default_rng(4))
    frames = np.sqrt(np.mean(bursts.reshape(-1, 160).astype(np.float64) ** 2, axis=1))  # 10 ms frames
    assert (frames < 1e-6).mean() > 0.2 and (frames > 0.5).mean() > 0.2  # on, then off
    bands = make_noise("bands", SR, SR, np.random.default_rng(5))
    spec = np.abs(np.fft.rfft(bands)) ** 2
    octaves = [spec[int(lo): int(2 * lo)].sum() for lo in (125, 250, 500, 1000, 2000, 4000)]
    assert max(octaves) > 10 * min(octaves)  # coloured: some octaves far louder than others
    with pytest.raises(ValueError, match="babble noise needs a pool"):
        make_noise("babble", 100, SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown noise type 'rain'"):
        make_noise("rain", 100, SR, np.random.default_rng(0))


def test_mix_sets_the_snr_and_never_clips():
    clean = speechy()
    noise = make_noise("pink", len(clean), SR, np.random.default_rng(0))
    for snr in (-5.0, 2.5, 17.5):
        noisy, ref = mix(clean, noise, snr)
        assert snr_db(ref, noisy - ref) == pytest.approx(snr, abs=1e-3) and np.abs(noisy).max() <= 0.99 + 1e-6


def test_test_noise_types_must_be_unseen_in_training():
    with pytest.raises(ValueError, match=r"test_noises: \['pink'\] also in train_noises"):
        EnhanceConfig(test_noises=["pink", "brown"])
    with pytest.raises(ValueError, match="unknown noise type"):
        EnhanceConfig(train_noises=["rain"])


def test_pairs_fixed_and_drawn():
    clips = [speechy(1.2, seed=i) for i in range(3)]
    a = fixed_pairs(clips, ["x", "y", "z"], SR, ["brown", "clicks"], [2.5, 7.5], seed=5, max_clips=2)
    b = fixed_pairs(clips, ["x", "y", "z"], SR, ["brown", "clicks"], [2.5, 7.5], seed=5, max_clips=2)
    assert len(a) == 2 * 2 * 2 and all(np.array_equal(p.noisy, q.noisy) for p, q in zip(a, b, strict=True))
    assert {(p.noise, p.snr) for p in a} == {("brown", 2.5), ("brown", 7.5), ("clicks", 2.5), ("clicks", 7.5)}
    src = PairSource(clips, SR, 8000, ["white", "babble"], [0.0, 15.0])
    noisy, clean = src.batch(4, np.random.default_rng(0))
    assert noisy.shape == clean.shape == (4, 8000) and not np.allclose(noisy, clean)


def test_the_mask_only_removes_energy_and_direct_starts_as_the_identity():
    logmel = torch.randn(2, 64, 37) - 5
    mask = MelUNet(64, base=4, depth=2, output="mask")
    direct = MelUNet(64, base=4, depth=2, output="direct")
    torch.testing.assert_close(direct(logmel), logmel)                 # any length (37: padded, cropped)
    with torch.no_grad():
        mask.out.bias.fill_(-3.0)
        mask.out.weight.normal_()
    out = mask(logmel)
    assert out.shape == logmel.shape and bool((out <= logmel + 1e-6).all())
    assert bool((out >= mask.floor_log).all())
    assert PairCritic(64, d=4, layers=3)(logmel, out).shape == (2, 8, 4)
    with pytest.raises(ValueError, match=r"expected log-mels \(B, 64, T\)"):
        mask(torch.zeros(2, 80, 10))


def tiny_enhancer(tmp_path, steps=40, output="mask", loss="log"):
    """A small enhancer trained on white noise over the test signal (its model file)."""
    from specgan.enhancement.trainer import EnhanceTrainer

    mel = MEL
    clips = [speechy(1.5, f0=110 + 15 * i, seed=i) for i in range(6)]
    cfg = EnhanceConfig(model={"name": "unet", "base": 8, "depth": 2, "output": output},
                        critic={"name": "patch", "d": 8, "layers": 2}, train_noises=["white"], test_noises=["brown"],
                        batch_size=4, steps=steps, log_every=steps, save_every=steps, eval_every=steps, lr_g=2e-3,
                        loss=loss)
    src = PairSource(clips, SR, 8000, ["white"], [0.0, 5.0])
    dev = fixed_pairs(clips[:2], ["a", "b"], SR, ["white"], [5.0], seed=1)
    from specgan.enhancement.sets import mel_statistics

    tr = EnhanceTrainer(cfg, mel, src, dev, mel_statistics(mel, clips), tmp_path / "enh", seed=0)
    tr.fit(progress=False, tensorboard=False)
    return tmp_path / "enh" / "model.safetensors", tr


@pytest.mark.slow  # trains (seconds); the quick loop keeps under two minutes
@pytest.mark.parametrize("loss", ["log", "compressed"])
def test_a_short_training_lowers_the_dev_error_below_the_noisy_inputs(tmp_path, loss):
    path, tr = tiny_enhancer(tmp_path, loss=loss)
    hist = [json.loads(line) for line in open(tmp_path / "enh" / "history.jsonl")]
    last = hist[-1]
    assert last["dev/l1"] < 0.8 * last["dev/noisy_l1"], last  # it learnt to remove the white noise
    if loss == "compressed":
        return
    from specgan.enhancement.inference import load_enhancer

    g, mel, step = load_enhancer(path)
    assert step == 40 and mel == MEL and g.output == "mask"
    torch.testing.assert_close(g.mean, tr.G.mean)


def test_streamed_enhancement_equals_the_whole_file_at_once(tmp_path):
    from specgan.enhancement.inference import Enhancement, load_enhancer
    from vocoder.registry import build_generator

    path, _ = tiny_enhancer(tmp_path, steps=2)
    g, mel, _ = load_enhancer(path)
    voc = build_generator({"name": "griffinlim"}, mel).eval()
    y = np.concatenate([speechy(1.0, seed=i) for i in range(5)])
    whole = Enhancement(g, voc, mel, chunk_frames=10_000, context_frames=32)
    chunked = Enhancement(g, voc, mel, chunk_frames=96, context_frames=32)
    with torch.no_grad():
        a = whole.enhanced_mel(torch.from_numpy(y), 0, whole.frames(len(y)))
        b = torch.cat([chunked.enhanced_mel(torch.from_numpy(y), s, min(s + 96, chunked.frames(len(y))))
                       for s in range(0, chunked.frames(len(y)), 96)], dim=1)
    # the U-Net's receptive field (depth 2: ~ ±14 frames) lies inside the 32 frames of context
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    out, rate = whole.enhance(np.stack([y, y], 1), SR)           # stereo in: mono out, same length
    assert rate == SR and out.shape == (len(y),)
    import specgan  # the notebook call: the same enhancer and vocoder give the same waveform

    again, rate2 = specgan.enhance(np.stack([y, y], 1), SR, recipe="tiny", model=path, vocoder="griffinlim")
    assert rate2 == SR and np.array_equal(again, out)


class _Gain(torch.nn.Module):
    """A stand-in enhancer: every mel band times a fixed gain (1 = the identity)."""

    def __init__(self, gain):
        super().__init__()
        self.gain = float(gain)

    def forward(self, logmel):
        return logmel + float(np.log(self.gain))


def test_gain_synthesis_is_exact_for_a_constant_gain_and_streams_like_the_whole_file(tmp_path):
    from specgan.enhancement.inference import Enhancement, load_enhancer

    y = np.concatenate([speechy(1.0, seed=i) for i in range(3)]) + np.float32(0.01) * np.random.default_rng(
        0).standard_normal(3 * SR).astype(np.float32)
    y = y[: len(y) - 77]  # not a whole number of hops
    for gain in (1.0, 0.25):  # the noisy STFT times a gain, inverted with its own phase: the input, scaled
        for chunk in (10_000, 40):
            job = Enhancement(_Gain(gain), None, MEL, chunk_frames=chunk, context_frames=4, synthesis="gain")
            out, rate = job.enhance(y, SR)
            assert rate == SR and out.shape == y.shape
            np.testing.assert_allclose(out, gain * y, atol=1e-5)
    # gains above max_gain are cut (1: suppression only), gains below min_gain raised to it
    out, _ = Enhancement(_Gain(4.0), None, MEL, synthesis="gain").enhance(y, SR)
    np.testing.assert_allclose(out, y, atol=1e-5)
    out, _ = Enhancement(_Gain(0.01), None, MEL, synthesis="gain", min_gain=0.1).enhance(y, SR)
    np.testing.assert_allclose(out, 0.1 * y, atol=1e-5)
    # a trained (tiny) mask: chunks with context give the whole file's waveform
    path, _ = tiny_enhancer(tmp_path, steps=2)
    g, mel, _ = load_enhancer(path)
    whole = Enhancement(g, None, mel, chunk_frames=10_000, context_frames=32, synthesis="gain").enhance(y, SR)[0]
    chunked = Enhancement(g, None, mel, chunk_frames=96, context_frames=32, synthesis="gain").enhance(y, SR)[0]
    np.testing.assert_allclose(whole, chunked, atol=1e-4)
    assert np.abs(whole).max() < np.abs(y).max()  # the mask only removes energy
    with pytest.raises(ValueError, match="synthesis 'vocoder' needs a vocoder"):
        Enhancement(g, None, mel)
    with pytest.raises(ValueError, match="synthesis: one of vocoder, gain"):
        EnhanceConfig(synthesis="phase")
    with pytest.raises(ValueError, match="loss: one of log, compressed"):
        EnhanceConfig(loss="l2")


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "specgan.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # two CLI runs (torch start-up each)
def test_enhance_at_the_cli_and_its_mistakes(tmp_path):
    path, _ = tiny_enhancer(tmp_path, steps=2)
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    sf.write(inp / "a.wav", speechy(), SR)
    import soxr

    at44 = soxr.resample(speechy(0.7), SR, 44100)
    sf.write(inp / "sub" / "b.flac", np.stack([at44, at44], 1), 44100)  # stereo, another rate
    (inp / "sub" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    common = ["--recipe", "tiny", "--model", str(path), "--vocoder", "griffinlim", "--no-progress"]
    out = tmp_path / "out"
    run = cli("enhance", str(inp), "--out", str(out), *common)
    assert run.returncode == 1 and "Traceback" not in run.stderr           # one file could not be read ...
    assert "skipping" in run.stderr and "broken.wav" in run.stderr
    assert sf.info(out / "a.wav").frames == SR and sf.info(out / "a.wav").samplerate == SR  # ... the others are done
    info = sf.info(out / "sub" / "b.wav")
    assert (info.samplerate, info.channels, info.frames) == (SR, 1, int(0.7 * SR))
    # the outputs exist now: refused without --force, replaced with it (in-process: the CLI's own
    # one-line handling of these errors is the empty-folder call below)
    from specgan.enhancement.files import enhance_paths
    from specgan.recipe import load_recipe

    tiny = load_recipe("tiny")
    with pytest.raises(FileExistsError, match="a.wav exists; --force replaces outputs"):
        enhance_paths(tiny, [inp / "a.wav"], out, model=str(path), vocoder="griffinlim", progress=False)
    assert enhance_paths(tiny, [inp / "a.wav"], out, force=True, model=str(path), vocoder="griffinlim",
                         progress=False)["written"] == [str(out / "a.wav")]
    gain = enhance_paths(tiny, [inp / "a.wav"], tmp_path / "g", model=str(path), progress=False, synthesis="gain")
    assert gain["written"] == [str(tmp_path / "g" / "a.wav")] and "synthesis: gain" in gain["vocoder"]
    # --out the input's own folder: the input would be overwritten, even with --force
    wav_in = inp / "a.wav"
    before = wav_in.read_bytes()
    with pytest.raises(ValueError, match="would overwrite the input"):
        enhance_paths(tiny, [wav_in], inp, force=True, model=str(path), vocoder="griffinlim", progress=False)
    assert wav_in.read_bytes() == before
    (tmp_path / "empty" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    empty = cli("enhance", str(tmp_path / "empty"), "--out", str(tmp_path / "o2"), *common)
    assert empty.returncode != 0 and "no audio files in this folder" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_a_ten_minute_file_streams_in_bounded_memory(tmp_path):
    from vocoder.checkpoint import save_generator
    from vocoder.registry import build_generator

    path, _ = tiny_enhancer(tmp_path, steps=2)
    # a small untrained iSTFT-head vocoder (hundreds x real time): the test is about memory, not sound
    spec = {"name": "istft", "dim": 16, "intermediate_dim": 32, "num_layers": 1}
    voc = save_generator(tmp_path / "voc.safetensors", build_generator(spec, MEL), spec, step=0)
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, speechy(3.0), SR)
    with sf.SoundFile(long, "w", SR, 1, subtype="PCM_16") as f:  # 10 minutes, written a minute at a time
        for i in range(10):
            f.write(np.tile(speechy(1.0, seed=i), 60))
    # one process: a 3-s file first (every code path warm), then the 10-minute one; the peak may
    # grow by the input's memory map (38 MB at 16 kHz) and little else. Held whole, the file's
    # waveform, mel, STFT and output would add over 200 MB.
    code = ("import resource, sys; from specgan.cli import main\n"
            "for name in ('short', 'long'):\n"
            "    rc = main(['enhance', sys.argv[1] + f'/{name}.wav', *sys.argv[2:]])\n"
            "    print('MAXRSS', name, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc)\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--out", str(tmp_path / "o"), "--recipe", "tiny",
                          "--model", str(path), "--vocoder", str(voc), "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    peaks = {line.split()[1]: (int(line.split()[2]) / 1024, line.split()[3]) for line in run.stdout.splitlines()
             if line.startswith("MAXRSS")}
    assert peaks["short"][1] == peaks["long"][1] == "0"
    assert sf.info(tmp_path / "o" / "long.wav").frames == 600 * SR
    assert peaks["long"][0] - peaks["short"][0] < 100, peaks


def test_si_sdr_known_answers():
    from specgan.metrics import si_sdr

    ref = speechy()
    noise = np.random.default_rng(0).standard_normal(len(ref)).astype(np.float32)
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / 10 ** (10 / 20)   # 10 dB below the reference
    assert si_sdr(ref, 3.0 * ref) > 100                     # scale-invariant
    assert si_sdr(ref, ref + noise) == pytest.approx(10.0, abs=0.3)
    assert np.isnan(si_sdr(np.zeros(100), np.ones(100)))


@pytest.mark.slow
def test_the_enhance_recipe_runs_and_scores_every_system(tmp_path):
    """`specgan run` on an enhance recipe (a folder of clean clips): prepare, train, evaluate."""
    from specgan.pipeline import run

    recipe = clean_speech_recipe(tmp_path, "enhance.yaml", [
        "enhance.model={name: unet, base: 4, depth: 2}", "enhance.critic={name: patch, d: 4}",
        "enhance.steps=3", "enhance.eval_every=3", "enhance.save_every=3", "enhance.eval_items=2",
        "enhance.test_items=1", "enhance.test_noises=[brown]", "enhance.test_snrs=[5.0]", "enhance.batch_size=2"])
    done = run(recipe, report=lambda _: None, progress=False)
    assert "trained to step 3" in done["specgan"] and "not used" in done["features"]
    out = json.loads((tmp_path / "work" / "eval" / "enhance.json").read_text())
    assert out["pairs"] == 1 and out["synthesis"] == "gain"  # the recipe's synthesis; the other is scored beside it
    assert set(out["overall"]) == {"noisy", "baseline", "enhanced", "enhanced_vocoder", "clean_vocoded"}
    noisy = out["overall"]["noisy"]
    assert noisy["si_sdr"] == pytest.approx(5.0, abs=1.5)    # the SNR it was mixed at (brown noise and a short clip correlate a little)
    assert all(np.isfinite(v) for s in out["overall"].values() for v in s.values())
    assert (tmp_path / "work" / "eval" / "enhance" / "brown_5dB_clip0_enhanced.wav").is_file()
    assert "up to date" in run(recipe, 5, 5, report=lambda _: None, progress=False)["evaluate"]
    from specgan.report import write_report  # the page: noisy / enhanced / clean players

    page = write_report(recipe).read_text()
    assert page.count("<audio") == 6 and "By noise type: brown" in page and ">enhanced_vocoder<" in page
    # fine-tuning from that run's folder (--init-from): its weights, a fresh critic; a codec file is one line
    from specgan.enhancement.inference import load_enhancer
    from specgan.training import train_enhancer

    assert train_enhancer(recipe, steps=1, progress=False, init_from=str(tmp_path / "work" / "enhance"),
                          out=tmp_path / "ft")["step"] == 1
    assert torch.equal(load_enhancer(tmp_path / "ft")[0].mean, load_enhancer(tmp_path / "work" / "enhance")[0].mean)
    codec = ROOT / "pretrained" / "codec" / "codec.safetensors"
    with pytest.raises(ValueError, match="kind 'codec'; the enhance stage fine-tunes from kind 'enhancer'"):
        train_enhancer(recipe, steps=1, progress=False, init_from=str(codec), out=tmp_path / "ft2")


def test_the_attenuation_limit_is_chosen_for_pesq_without_losing_stoi():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from enhance_min_gain import choose

    noisy = {"pesq_wb": 1.5, "stoi": 0.93}
    table = {0.1: {"pesq_wb": 2.1, "stoi": 0.92}, 0.2: {"pesq_wb": 2.0, "stoi": 0.94}, 0.3: {"pesq_wb": 1.9, "stoi": 0.95}}
    assert choose(table, noisy) == 0.2          # 0.1 has the best PESQ but loses STOI
    assert choose({0.1: table[0.1]}, noisy) == 0.1  # none keeps STOI: the best PESQ


def test_recorded_noise_reads_opensfx_by_group_and_names_what_is_wrong(tmp_path, monkeypatch):
    """The recorded types: OpenSFX's sounds, grouped by what they are (specgan.enhancement.recorded)."""
    from specgan.enhancement.noise import RECORDED, check_available
    from specgan.enhancement.recorded import GROUPS, OPENSFX, group_sounds, read_catalogue, recorded_noise

    sounds = read_catalogue()
    assert len(sounds) == 73 and all(sr == 44100 for _, _, sr in sounds)
    assert set(GROUPS) | {"keyboard"} == set(RECORDED)
    used = [i for g in GROUPS.values() for i in g]
    assert len(used) == len(set(used))  # no sound in two groups: a test group is unheard in training
    for g in GROUPS:
        rec = group_sounds(g, SR)
        assert len(rec) == len(GROUPS[g]) and all(np.abs(r).max() == pytest.approx(1.0) for r in rec)
    # a noise of any length, from the group's recordings, seeded
    a = recorded_noise("machinery", 5 * SR, SR, np.random.default_rng(7))
    assert len(a) == 5 * SR and np.array_equal(a, recorded_noise("machinery", 5 * SR, SR, np.random.default_rng(7)))
    frames = np.sqrt(np.mean(a.reshape(-1, 1600) ** 2, axis=1))
    assert (frames > 1e-3).mean() > 0.8  # filled, not mostly silence
    wind = np.abs(np.fft.rfft(make_noise("nature", SR, SR, np.random.default_rng(1)))) ** 2
    assert np.isfinite(wind).all() and wind.sum() > 0
    # the mistakes, one line each, naming the file
    with pytest.raises(FileNotFoundError, match="openttd-opensfx"):
        read_catalogue(tmp_path / "missing.cat")
    foreign = tmp_path / "foreign.cat"
    foreign.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(ValueError, match="foreign.cat: not an OpenTTD sound catalogue"):
        read_catalogue(foreign)
    cut = tmp_path / "cut.cat"
    cut.write_bytes(OPENSFX.read_bytes()[:500_000])
    with pytest.raises(ValueError, match="cut.cat: sound .* past the end"):
        read_catalogue(cut)
    with pytest.raises(ValueError, match="unknown recorded noise group 'rain'"):
        group_sounds("rain", SR)
    check_available(["white", "vehicles"], SR)  # present: no error
    # a system without the package: the pair stream refuses before drawing anything
    from specgan.enhancement.data import PairSource

    monkeypatch.setenv("SPECGAN_OPENSFX", str(tmp_path / "missing.cat"))
    with pytest.raises(FileNotFoundError, match="missing.cat not found: recorded noise needs the openttd-opensfx"):
        PairSource([speechy()], SR, SR, ["white", "impacts"], [5.0])
    PairSource([speechy()], SR, SR, ["white", "pink"], [5.0])  # synthesised types alone need nothing


def test_keyboard_noise_types_real_keys_at_a_typing_rate(tmp_path, monkeypatch):
    """`keyboard`: bucklespring's recorded keys, pressed and released at a typist's rate."""
    import soundfile as sf

    from specgan.enhancement.noise import check_available
    from specgan.enhancement.recorded import key_sounds, typing_noise

    keys = key_sounds(SR)
    assert len(keys) > 50 and all(np.abs(p).max() == pytest.approx(1.0) for p, _ in keys)
    y = make_noise("keyboard", 10 * SR, SR, np.random.default_rng(3))
    assert len(y) == 10 * SR and y.dtype == np.float32 and np.sqrt(np.mean(y.astype(np.float64) ** 2)) == \
        pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(y, make_noise("keyboard", 10 * SR, SR, np.random.default_rng(3)))
    # keystrokes: 10-ms frames whose level jumps up by 10 dB, about 4-14 a second (presses and releases)
    env = 20 * np.log10(np.sqrt(np.mean(y.reshape(-1, SR // 100).astype(np.float64) ** 2, axis=1)) + 1e-6)
    onsets = int(np.sum((env[1:] - env[:-1] > 10) & (env[1:] > env.max() - 40)))
    assert 40 <= onsets <= 140, onsets
    assert np.median(env) < env.max() - 15  # between the keys it is quiet: impulsive, not a hiss
    # the mistakes, one line each
    with pytest.raises(FileNotFoundError, match="bucklespring-data"):
        typing_noise(SR, SR, np.random.default_rng(0), path=tmp_path / "none")
    (tmp_path / "half").mkdir()
    sf.write(tmp_path / "half" / "01-0.wav", np.ones(100, np.float32) * 0.1, SR)  # a press without its release
    with pytest.raises(ValueError, match="half: no key recordings"):
        key_sounds(SR, tmp_path / "half")
    monkeypatch.setenv("SPECGAN_BUCKLESPRING", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="none not found: the keyboard noise needs the bucklespring-data"):
        check_available(["white", "keyboard"], SR)


def test_speech_weight_charges_removed_speech_more_than_noise_left():
    """enhance.speech_weight: an output under the clean target costs `speech_weight` times as much
    as the same error above it, in both reconstruction domains; 1 is the plain L1."""
    from specgan.enhancement.config import EnhanceConfig
    from specgan.enhancement.trainer import EnhanceTrainer

    clean = torch.full((1, MEL.n_mels, 8), -2.0)
    for loss in ("log", "compressed"):
        costs = {}
        for w in (1.0, 3.0):
            tr = EnhanceTrainer.__new__(EnhanceTrainer)  # the loss alone: no data, no model
            tr.cfg, tr.mel = EnhanceConfig(loss=loss, speech_weight=w), MEL
            if loss == "log":
                costs[w] = [float(tr.reconstruction(None, None, clean + d, clean)) for d in (-0.5, 0.5)]
            else:
                costs[w] = [float(tr.reconstruction(clean + d, clean, None, None)) for d in (-0.5, 0.5)]
        below, above = costs[3.0]
        assert below == pytest.approx(3 * costs[1.0][0], rel=1e-5) and above == pytest.approx(costs[1.0][1], rel=1e-5)
        assert below > 2 * above
    with pytest.raises(ValueError, match="speech_weight: must be positive"):
        EnhanceConfig(speech_weight=0.0)
