"""Each metric on cases with known answers, so that each can fail."""

import numpy as np
import pytest

from specgan import metrics as M


def test_inception_score_bounds():
    confident_uniform = np.eye(10)[np.arange(100) % 10]  # sure of each, every class equally often
    assert M.inception_score(confident_uniform)[0] == pytest.approx(10.0, rel=1e-6)
    undecided = np.full((50, 10), 0.1)
    assert M.inception_score(undecided)[0] == pytest.approx(1.0, abs=1e-9)
    one_class = np.eye(10)[np.zeros(50, int)]  # confident but no variety
    assert M.inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_frechet_distance_of_a_set_with_itself_and_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean shifted by 2 in every dimension → 8 * 2² = 32
    assert M.frechet_distance(a, a + 2.0) == pytest.approx(32.0, rel=1e-6)
    b = rng.normal(size=(500, 8)) * 3  # variance 9: per dim 1 + 9 - 2*3 = 4 → about 32
    assert M.frechet_distance(a, b) == pytest.approx(32.0, rel=0.2)


def test_ndb_real_vs_real_is_near_zero_and_a_collapsed_set_is_not():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=5, size=(10, 4))
    real = centres[rng.integers(10, size=2000)] + rng.normal(size=(2000, 4))
    other_real = centres[rng.integers(10, size=2000)] + rng.normal(size=(2000, 4))
    same = M.ndb_jsd(real, other_real, k=10)
    assert same["ndb"] <= 2 and same["jsd"] < 0.01  # expected alpha * k = 0.5 false positives
    collapsed = centres[np.zeros(2000, int)] + rng.normal(size=(2000, 4))  # one mode only
    bad = M.ndb_jsd(real, collapsed, k=10)
    assert bad["ndb"] >= 8 and bad["jsd"] > 0.3


def test_diversity_and_memorisation_distances():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(50, 16))
    assert np.allclose(M.nearest_neighbour_distance(train[:5], train), 0, atol=1e-6)  # copies of training samples
    assert M.nearest_neighbour_distance(train[:5] + 0.5, train).min() > 0.1
    assert M.mean_pairwise_distance(np.repeat(train[:1], 4, 0)) == 0.0
    assert M.mean_pairwise_distance(train) == pytest.approx(np.sqrt(2), rel=0.1)  # two unit Gaussians


def _tone(f0, sr=16000, secs=1.0, harmonics=4):
    t = np.arange(int(sr * secs)) / sr
    return sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1)).astype(np.float32) * 0.3


def test_pitch_accuracy_and_f0_metrics_on_tones():
    import librosa

    sr = 16000
    wavs = [_tone(librosa.midi_to_hz(m), sr) for m in (48, 60, 67)]
    acc = M.pitch_accuracy(wavs, [48, 60, 67], sr)
    assert acc["pitch_accuracy"] == 1.0 and acc["mean_abs_error_semitones"] < 0.1
    wrong = M.pitch_accuracy(wavs, [50, 61, 79], sr)  # two wrong notes; 79 is 67 an octave up
    assert wrong["pitch_accuracy"] == 0.0 and wrong["pitch_class_accuracy"] == pytest.approx(1 / 3)
    ref = _tone(220.0, sr)
    same = M.f0_metrics(ref, ref, sr)
    assert same["f0_rmse_cents"] < 1 and same["vuv_error"] == 0
    sharp = M.f0_metrics(ref, _tone(220.0 * 2 ** (50 / 1200), sr), sr)  # +50 cents
    assert 40 < sharp["f0_rmse_cents"] < 60
    assert sharp["f0_gpe"] == 0.0 and sharp["f0_fpe_cents"] == pytest.approx(sharp["f0_rmse_cents"])
    # an octave jump in the second half: gross errors there, the fine error stays that of the rest
    half = len(ref) // 2
    jump = np.concatenate([_tone(220.0 * 2 ** (50 / 1200), sr)[:half], _tone(440.0, sr)[half:]])
    split = M.f0_metrics(ref, jump, sr)
    assert 0.3 < split["f0_gpe"] < 0.7 and split["f0_rmse_cents"] > 600 and 30 < split["f0_fpe_cents"] < 70


def test_pesq_and_stoi_of_identical_and_degraded_speech_like_signals():
    rng = np.random.default_rng(3)
    sr = 16000
    t = np.arange(3 * sr) / sr
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)  # syllable-like on/off
    ref = (_tone(150, sr, 3.0, harmonics=12) * env + 0.01 * rng.normal(size=t.size)).astype(np.float32)
    assert M.pesq_wb(ref, ref) == pytest.approx(4.64, abs=0.01)  # P.862.2's maximum
    noisy = ref + 0.3 * rng.normal(size=ref.size).astype(np.float32)
    assert M.pesq_wb(ref, noisy) < 2.0
    assert M.stoi(ref, ref, sr) == pytest.approx(1.0, abs=1e-6)
    assert M.stoi(ref, noisy, sr) < 0.9
    # a word shorter than STOI's 384-ms window inside digital silence: undefined, NaN (pystoi says 1e-5)
    word = np.concatenate([np.zeros(sr // 2), ref[: sr // 4], np.zeros(sr // 4)]).astype(np.float32)
    assert np.isnan(M.stoi(word, word, sr))
    longer = np.concatenate([np.zeros(sr // 2), ref[: sr // 2], np.zeros(sr // 4)]).astype(np.float32)
    assert M.stoi(longer, longer, sr) == pytest.approx(1.0, abs=1e-6)


def test_copy_pitch_scores_notes_through_a_vocoder_against_their_asked_pitch(tmp_path, monkeypatch):
    """Harmonic notes at known MIDI pitches: a vocoder that returns each note as it was keeps the
    originals' rate (ratio 1, no buzz); one that returns it a semitone sharp gets none right."""
    import soundfile as sf
    import torch

    import specgan.evaluate as E
    from specgan.data.manifest import Item
    from specgan.recipe import load_recipe

    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={tmp_path / 'w'}"])
    sr = recipe.mel.sample_rate
    t = np.arange(sr // 2) / sr  # half-second notes: pYIN is the cost here

    def note(midi):
        f = 440.0 * 2 ** ((midi - 69) / 12)
        return (0.3 * sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))).astype(np.float32)

    items = []
    for m in (45, 57, 69, 76):
        sf.write(tmp_path / f"n{m}.wav", note(m), sr)
        items.append(Item(id=f"n{m}", path=str(tmp_path / f"n{m}.wav"), labels={"pitch": m, "kind": "note"},
                          group="synth"))
    excerpt = Item(id="x", path=str(tmp_path / "n45.wav"), labels={"pitch": None, "kind": "excerpt"}, group="synth")
    spoken = Item(id="d", path=str(tmp_path / "n45.wav"), labels={"word": "one", "pitch": 40}, group="espeak")
    monkeypatch.setattr("specgan.data.prepare.load_split", lambda recipe, split: [excerpt, spoken, *items])
    assert [it.id for it in E.note_items(recipe, "test")] == ["n45", "n57", "n69", "n76"]  # no excerpt, no TTS pitch
    assert [it.id for it in E.note_items(recipe, "test", 2)] == ["n45", "n76"]  # thinned evenly
    # without kinds, a pitch counts as MIDI only in a recipe conditioned on pitch (builtin:notes, NSynth)
    bare = [Item(id=it.id, path=it.path, labels={"pitch": it.labels["pitch"]}, group="synth") for it in items]
    monkeypatch.setattr("specgan.data.prepare.load_split", lambda recipe, split: [spoken, *bare])
    assert E.note_items(recipe, "test") == []  # tiny is conditioned on the word
    pitched = load_recipe("recipes/tiny.yaml", [f"work_dir={tmp_path / 'w'}", "data.label=pitch"])
    assert [it.id for it in E.note_items(pitched, "test")] == ["d", "n45", "n57", "n69", "n76"]
    monkeypatch.setattr("specgan.data.prepare.load_split", lambda recipe, split: [excerpt, spoken, *items])

    class Replay(torch.nn.Module):  # "vocodes" note i as the given waveforms, in order
        def __init__(self, wavs):
            super().__init__()
            self.wavs = list(wavs)

        def forward(self, mel):
            return torch.from_numpy(self.wavs.pop(0))[None, None]

    pre = recipe.data.preprocess
    from specgan.audio import load_clip

    same = [recipe.mel.crop_samples(load_clip(it.path, sr, pre, recipe.mel.n_fft)) for it in items]
    good = E.copy_pitch(Replay(same), recipe, "test", None)
    assert good["notes"] == 4 and good["real"]["pitch_accuracy"] == 1.0 and good["copies"]["pitch_accuracy"] == 1.0
    assert good["ratio"] == 1.0 and abs(good["buzz_db"]) < 0.1
    sharp = [recipe.mel.crop_samples(note(it.labels["pitch"] + 1)) for it in items]
    bad = E.copy_pitch(Replay(sharp), recipe, "test", None)
    assert bad["copies"]["pitch_accuracy"] == 0.0 and bad["ratio"] == 0.0 and bad["real"]["pitch_accuracy"] == 1.0
    reused = E.copy_pitch(Replay(sharp), recipe, "test", None, real=good["real"])  # originals not tracked again
    assert reused["real"] is good["real"] and reused["copies"] == bad["copies"] and reused["ratio"] == 0.0


def test_paired_bootstrap_known_answers():
    """A constant shift is found exactly with a zero-width interval; pure noise around equal means
    gives an interval containing 0; a real shift under noise gives one that excludes 0; NaN pairs
    drop out; mismatched inputs are refused."""
    a = np.linspace(0.0, 1.0, 50)
    b = M.paired_bootstrap(a + 2.0, a)
    assert b["diff"] == pytest.approx(2.0) and b["lo"] == pytest.approx(2.0) and b["hi"] == pytest.approx(2.0)
    assert b["n"] == 50
    rng = np.random.default_rng(1)
    x, noise = rng.normal(size=200), rng.normal(size=200)
    same = M.paired_bootstrap(x + noise - noise.mean(), x)
    assert same["lo"] < 0 < same["hi"] and abs(same["diff"]) < 1e-9
    shifted = M.paired_bootstrap(x + noise + 0.5, x)
    assert 0 < shifted["lo"] < 0.5 + noise.mean() < shifted["hi"]
    few = M.paired_bootstrap(x[:20] + noise[:20] + 0.5, x[:20])
    assert shifted["hi"] - shifted["lo"] < few["hi"] - few["lo"]  # more clips, narrower interval
    with_nan = M.paired_bootstrap(np.array([1.0, np.nan, 3.0]), np.array([0.0, 5.0, np.nan]))
    assert with_nan["n"] == 1 and with_nan["diff"] == 1.0
    assert M.paired_bootstrap(np.array([np.nan]), np.array([1.0]))["n"] == 0
    with pytest.raises(ValueError, match="equal length"):
        M.paired_bootstrap(np.zeros(3), np.zeros(4))


def test_copy_synthesis_per_clip_rows_stay_aligned_with_the_clips(tmp_path):
    """Per-clip rows have one value per clip in every column, NaN where a clip has no voiced frame,
    so two vocoders' rows pair clip by clip; the means ignore those NaNs."""
    import torch

    from specgan.evaluate import copy_synthesis
    from specgan.recipe import load_recipe

    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={tmp_path / 'w'}"])
    sr = recipe.mel.sample_rate
    t = np.arange(sr) / sr
    tone = 0.3 * sum(np.sin(2 * np.pi * k * 220.0 * t) / k for k in range(1, 6))
    noise = 0.05 * np.random.default_rng(0).normal(size=sr)
    clips = [torch.from_numpy(recipe.mel.crop_samples(w.astype(np.float32)))[None, None] for w in (tone, noise, tone)]

    class Replay(torch.nn.Module):  # returns each clip as it was
        def __init__(self):
            super().__init__()
            self.left = list(clips)

        def forward(self, mel):
            return self.left.pop(0)

    r = copy_synthesis(Replay(), clips, recipe, per_clip=True)
    rows = r["per_clip"]
    assert all(len(v) == 3 for v in rows.values()), {k: len(v) for k, v in rows.items()}
    f0 = np.asarray(rows["f0_rmse_cents"])
    assert np.isnan(f0[1]) and f0[0] == pytest.approx(0.0, abs=1e-6) and f0[2] == pytest.approx(0.0, abs=1e-6)
    assert r["f0_rmse_cents"] == pytest.approx(0.0, abs=1e-6) and r["mel_l1"] == pytest.approx(0.0, abs=1e-5)
    assert r["clips_scored"] == {"f0_rmse_cents": 2, "f0_gpe": 2, "f0_fpe_cents": 2, "of": 3}  # the noise has no F0
    assert "per_clip" not in copy_synthesis(Replay(), clips, recipe, f0=False)
    assert "clips_scored" not in copy_synthesis(Replay(), clips, recipe, f0=False)


@pytest.mark.parametrize("tracker", ["pyin", "crepe-tiny"])
def test_pitch_accuracy_by_each_tracker_on_tones(tracker):
    import librosa

    sr = 16000
    wavs = [_tone(librosa.midi_to_hz(m), sr, secs=0.5) for m in (45, 60, 72)]
    hop = 160 if tracker == "pyin" else 800
    right = M.pitch_accuracy(wavs, [45, 60, 72], sr, hop=hop, tracker=tracker)
    assert right["pitch_accuracy"] == 1.0 and right["mean_abs_error_semitones"] < 0.2, right
    wrong = M.pitch_accuracy(wavs, [46, 59, 84], sr, hop=hop, tracker=tracker)  # 84: 72 an octave up
    assert wrong["pitch_accuracy"] == 0.0 and wrong["pitch_class_accuracy"] == pytest.approx(1 / 3), wrong
    silent = M.pitch_accuracy([np.zeros(sr // 2, np.float32)], [60], sr, hop=hop, tracker=tracker)
    assert silent["pitch_accuracy"] == 0.0 and silent["unvoiced"] == 1
    with pytest.raises(ValueError, match="pitch tracker 'yin'"):
        M.pitch_accuracy(wavs, [45, 60, 72], sr, tracker="yin")


def test_generated_pitch_is_scored_by_every_tracker_the_recipe_names(tmp_path, monkeypatch):
    """evaluate.pitch_trackers: the first tracker is the headline; each names its notes and hop;
    CREPE scores only the first crepe_notes clips. Generated = the notes a semitone sharp (all
    wrong), real = the notes as asked (all right)."""
    import types

    import soundfile as sf

    import specgan.evaluate as E
    from specgan.recipe import load_recipe

    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={tmp_path / 'w'}", "data.label=pitch",
                                               "evaluate.pitch_trackers=[pyin, crepe-tiny]", "evaluate.crepe_notes=2"])
    sr = recipe.mel.sample_rate
    midi = [50, 62, 69]
    paths = []
    for m in midi:
        sf.write(tmp_path / f"n{m}.wav", _tone(440.0 * 2 ** ((m - 69) / 12), sr, secs=0.6), sr)
        paths.append(str(tmp_path / f"n{m}.wav"))
    import torch

    sharp = torch.from_numpy(np.stack([_tone(440.0 * 2 ** ((m + 1 - 69) / 12), sr, secs=0.6) for m in midi]))
    model = types.SimpleNamespace(mel_cfg=recipe.mel)
    out = E._pitch(recipe, model, sharp, midi, types.SimpleNamespace(paths=paths))
    assert set(out["trackers"]) == {"pyin", "crepe-tiny"} and out["generated"] is out["trackers"]["pyin"]["generated"]
    assert out["trackers"]["pyin"]["notes"] == 3 and out["trackers"]["crepe-tiny"]["notes"] == 2
    assert out["trackers"]["crepe-tiny"]["hop"] == sr // 20 and out["trackers"]["crepe-tiny"]["real"]["notes"] == 2
    for r in out["trackers"].values():
        assert r["generated"]["pitch_accuracy"] == 0.0 and r["real"]["pitch_accuracy"] == 1.0
    assert "pitch accuracy by crepe-tiny 0.000 (real 1.000; 2 notes)" in E.summary_lines(
        {"generation": {"ndb": 0, "bins": 2, "jsd": 0.0, "diversity_generated": 0.0, "diversity_real": 0.0,
                        "nn_train_distance_generated": 0.0, "nn_train_distance_real": 0.0, "pitch": out},
         "vocoder": {k: {"model": k, "mel_l1": 0.0, "mrstft": 0.0, "x_real_time": 1.0} for k in ("trained", "griffinlim")}})
    with pytest.raises(ValueError, match="pitch_trackers"):
        load_recipe("recipes/tiny.yaml", ["evaluate.pitch_trackers=[yin]"])


# -- fine structure of the mel --------------------------------------------------------------------
def _mels(ripple, frames=40, n_mels=32, level=None):
    """(1, n_mels, frames) log-mels: a sloping envelope plus ripple(f, t) (f, t index arrays)."""
    f, t = np.meshgrid(np.arange(n_mels), np.arange(frames), indexing="ij")
    x = -2.0 - 0.05 * f + ripple(f, t)
    if level is not None:
        x = x + level[None, :]
    return x[None]


def test_fine_structure_known_answers():
    from specgan.stage_one.harmonics import fine_structure

    comb = lambda f, t: 0.5 * np.cos(2 * np.pi * f / 3)  # noqa: E731  lines 3 bands apart, fixed
    still = fine_structure(_mels(comb), bands=24)
    assert still["time_corr"] > 0.99 and 0.25 < still["contrast"] < 0.36 and still["frames"] == 40
    checker = fine_structure(_mels(lambda f, t: comb(f, t) * (-1.0) ** t), bands=24)
    assert checker["time_corr"] < -0.99 and checker["contrast"] == pytest.approx(still["contrast"])
    # harmonics of an F0 with vibrato: the lines move from frame to frame, more the wider the vibrato
    vibrato = [fine_structure(_mels(lambda f, t, a=a: 0.5 * np.cos(2 * np.pi * f / (3 * (1 + a * np.sin(t / 6))))),
                              bands=24)["time_corr"] for a in (0.05, 0.15, 0.3)]
    assert 0.99 > vibrato[0] > vibrato[1] > vibrato[2] > 0.2
    noise = np.random.default_rng(0).normal(0, 0.3, (32, 40))
    n = fine_structure(_mels(lambda f, t: noise), bands=24)
    assert abs(n["time_corr"]) < 0.15 and n["contrast"] > 0.2
    smooth = fine_structure(_mels(lambda f, t: 0.0 * f), bands=24)  # a linear envelope has no ripple
    assert smooth["contrast"] < 1e-9 and np.isnan(smooth["time_corr"])
    # quiet frames do not count: a fixed comb in the loud half, a checkerboard 60 dB down
    level = np.where(np.arange(40) < 20, 0.0, -60 / 20 * np.log(10))
    half = fine_structure(_mels(lambda f, t: comb(f, t) * np.where(t < 20, 1.0, (-1.0) ** t), level=level), bands=24)
    assert half["frames"] == 20 and half["time_corr"] > 0.99
    with pytest.raises(ValueError, match="fine_structure"):
        fine_structure(np.zeros((2, 16, 10)), bands=24)
    with pytest.raises(ValueError, match="width"):
        fine_structure(np.zeros((2, 32, 10)), bands=24, width=4)


def test_comb_fit_finds_a_harmonic_ripple_and_its_f0_and_not_a_random_one():
    """Known answers on a 64-mel, 16 kHz filterbank: a spectrum whose low bands are the comb of
    130 Hz (on an envelope) fits at ~1 with its F0 found within a bin; the same comb at 60 % depth
    fits as well (correlation ignores depth); a random ripple of the same depth fits far worse
    and almost never passes the threshold; quiet frames do not count; bad shapes are refused."""
    from specgan.stage_one.harmonics import COMB_FIT_HARMONIC, comb_fit
    from specgan.stage_one.harmonics import harmonic_templates
    from vocoder.mel import MelConfig

    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    f0s = np.geomspace(60, 400, 96)
    tmpl, nb = harmonic_templates(mel, f0s)
    tmpl = tmpl.numpy()
    bands, T = 30, 20
    env = -0.05 * np.arange(64)[:, None] * np.ones(T)                       # a sloping envelope (nats)
    k = int(np.argmin(abs(f0s - 130)))
    x = np.tile(env, (3, 1, 1))
    x[:, :nb] += tmpl[k][:, None]
    r = comb_fit(x, tmpl, f0s, bands)
    assert r["fit"] > 0.99 and r["harmonic_frames"] == 1.0 and r["frames"] == 3 * T
    assert all(abs(np.log(f / f0s[k])) < 0.03 for f in r["f0_hz"])
    shallow = np.tile(env, (3, 1, 1))
    shallow[:, :nb] += 0.6 * tmpl[k][:, None]
    assert comb_fit(shallow, tmpl, f0s, bands)["fit"] == pytest.approx(r["fit"], abs=1e-6)
    rng = np.random.default_rng(0)
    depth = tmpl[k, :bands].std()
    noisy = np.tile(env, (8, 1, 1)) + np.pad(rng.normal(0, depth, (8, bands, T)), ((0, 0), (0, 64 - bands), (0, 0)))
    n = comb_fit(noisy, tmpl, f0s, bands)
    assert n["fit"] < 0.6 and n["harmonic_frames"] < 0.05 and n["fit"] < r["fit"] - 0.3
    # the comb in the loud half of each clip, noise 60 dB down in the other: only the loud half counts
    quiet = np.tile(env, (2, 1, 1))
    quiet[:, :nb, : T // 2] += tmpl[k][:, None]
    quiet[:, :bands, T // 2 :] += rng.normal(0, depth, (2, bands, T - T // 2))
    quiet[:, :, T // 2 :] -= 60 / 20 * np.log(10)
    q = comb_fit(quiet, tmpl, f0s, bands)
    assert q["frames"] == T and q["harmonic_frames"] == 1.0 and COMB_FIT_HARMONIC < q["fit"]
    with pytest.raises(ValueError, match="comb_fit"):
        comb_fit(x, tmpl[:, :10], f0s, bands)
    with pytest.raises(ValueError, match="comb_fit"):
        comb_fit(x, tmpl, f0s[:5], bands)


def test_spectral_convergence_known_answers():
    from specgan.metrics import spectral_convergence

    sr = 16000
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t)
    assert spectral_convergence(y, y) == 0.0
    assert spectral_convergence(y, np.zeros_like(y)) == pytest.approx(1.0)
    assert spectral_convergence(y, 0.5 * y) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    small, large = (spectral_convergence(y, y + rng.normal(size=y.size) * s) for s in (0.001, 0.05))
    assert 0 < small < large
    # a delay of a quarter period changes the phase only: much closer than noise of the same power
    assert spectral_convergence(y[9:], y[:-9]) < 0.1
    assert np.isnan(spectral_convergence(y[:100], y[:100]))  # shorter than every resolution


@pytest.mark.slow
def test_visqol_audio_orders_degradations():
    """ViSQOL's audio mode (the music vocoders' perceptual measure) runs offline and ranks an exact
    copy above a lightly and a heavily noised one."""
    from specgan.metrics import visqol_audio

    sr = 16000
    t = np.arange(3 * sr) / sr
    y = sum(np.sin(2 * np.pi * k * 220 * t) / k for k in range(1, 10)) * np.exp(-t) * 0.3
    rng = np.random.default_rng(0)
    scores = [visqol_audio(y, y + rng.normal(size=y.size) * s, sr) for s in (0.0, 0.003, 0.03)]
    assert scores[0] > 4.5 and scores[0] > scores[1] > scores[2]


# -- DNSMOS ----------------------------------------------------------------------------------------
def test_dnsmos_hears_noise_as_noise_and_tiles_short_clips():
    """Known directions of the MOS predictor: white noise scores at the bottom of the scale; a
    harmonic, speech-like clip buried in noise has a worse background (BAK) than the clean clip;
    a short clip is tiled to the 9.01-s input (scoring it equals scoring the tiled clip); a clip
    at another rate is resampled; silence is NaN, and skipped in a set's mean."""
    from conftest import speech_like

    from specgan import metrics as M

    assert M.dnsmos_available() is None, M.dnsmos_available()
    rng = np.random.default_rng(0)
    noise = M.dnsmos(rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    assert noise["ovrl"] < 1.6 and noise["bak"] < 1.6, noise
    clean = speech_like(16000, seconds=1.5)
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    a, b = M.dnsmos(clean, 16000), M.dnsmos(noisy, 16000)
    assert a["bak"] > b["bak"] + 0.5, (a, b)
    tiled = np.tile(clean, 7)[: int(9.01 * 16000)]
    assert M.dnsmos(tiled, 16000) == pytest.approx(a, abs=1e-4)
    import soxr

    at_22k = soxr.resample(clean, 16000, 22050).astype(np.float32)
    assert M.dnsmos(at_22k, 22050)["bak"] == pytest.approx(a["bak"], abs=0.3)
    assert all(np.isnan(v) for v in M.dnsmos(np.zeros(8000, np.float32), 16000).values())
    both = M.dnsmos_set([clean, np.zeros(8000, np.float32)], 16000)
    assert both["clips"] == 1 and both["ovrl"] == pytest.approx(a["ovrl"])


def test_consonant_bands_reads_levels_shares_and_onsets_on_known_mels():
    """tools/consonant_bands.py on built mels: a clip whose high bands hold 1/3 of its power has a
    share of 1/3; a high band switched on in one step rises by its whole level once; band levels
    average the active frames only (a silent frame 60 dB down is left out)."""
    from conftest import load_tool

    cb = load_tool("consonant_bands")
    high = np.array([False, False, True])
    x = np.full((1, 3, 4), np.log(1.0))
    x[0, 2] = 0.5 * np.log(1.0)           # power 1 in each band: high share 1/3
    assert cb.high_share(x, high)[0] == pytest.approx(1 / 3)
    step = np.full((1, 3, 4), 0.0)
    step[0, 2, :2] = -5.0                  # the high band off, then on: one rise of 5 nats
    assert cb.high_onsets(step, high)[0] == pytest.approx(5.0 / 3)  # 3 frame pairs, one rise
    quiet = np.zeros((1, 3, 3))
    quiet[0, :, 2] = -20.0                 # a frame far below the loudest: not active
    assert cb.active_frames(quiet).tolist() == [[True, True, False]]
    np.testing.assert_allclose(cb.band_levels(quiet), [0.0, 0.0, 0.0])
