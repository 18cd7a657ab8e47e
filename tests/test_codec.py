"""Compression: the bitstream, the RVQ mel codec, streaming encode/decode, training, and
`specgan encode` / `specgan decode` at the CLI with their mistakes."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import clean_speech_recipe, need_tool, speechy

from specgan.codec.bitstream import HEADER, BitPacker, CodecFileError, Header, read_codes, unpack_codes
from specgan.codec.config import CodecConfig, parse_bitrate
from specgan.codec.inference import CodecJob
from specgan.codec.trainer import build_codec
from vocoder.mel import MelConfig

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
# the codec recipe's mel (the speech recipes'): a model made here reads recipes/codec.yaml's files
MEL = MelConfig(sample_rate=SR, n_fft=1024, hop_length=256, win_length=1024, n_mels=64, fmin=0.0, fmax=8000.0)
SPEC = {"name": "rvq", "channels": 16, "latent": 8, "stride": 2, "n_q": 4, "codebook_size": 256, "code_dim": 4,
        "dilations": [1, 3]}


def job(seed=0, chunk=512, vocoder=None):
    torch.manual_seed(seed)
    return CodecJob(build_codec(SPEC, MEL).eval(), vocoder, MEL, chunk_frames=chunk, context_frames=16)


def test_bit_packing_round_trips_whatever_the_chunking():
    rng = np.random.default_rng(0)
    for bits in (1, 5, 10, 13):
        codes = rng.integers(0, 1 << bits, (37, 3))
        whole = BitPacker(bits)
        a = whole.pack(codes) + whole.finish()
        parts = BitPacker(bits)
        b = b"".join(parts.pack(codes[i: i + 5]) for i in range(0, 37, 5)) + parts.finish()
        assert a == b and len(a) == -(-37 * 3 * bits // 8) and whole.crc == parts.crc
        h = Header(3, bits, 2, b"12345678", SR, 1000, 37, 999, whole.crc)
        assert Header.unpack(h.pack()) == h and len(h.pack()) == HEADER.size == 40
        np.testing.assert_array_equal(unpack_codes(a, h), codes)


def test_a_file_that_is_not_whole_is_refused_in_one_line():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 1024, (20, 2))
    p = BitPacker(10)
    payload = p.pack(codes) + p.finish()
    data = Header(2, 10, 2, b"abcdefgh", SR, 2560, 20, 625, p.crc).pack() + payload
    h, back = read_codes(io.BytesIO(data), "x.sgc")
    np.testing.assert_array_equal(back, codes)
    cases = {
        "not a specgan codec file": b"RIFF" + data[4:],
        "truncated: 10 of 50 payload bytes": data[:50],
        "shorter than the 40-byte header": data[:20],
        "more found": data + b"\0",
        "CRC does not match": data[:-1] + bytes([data[-1] ^ 1]),
        "version 9": data[:4] + b"\x09" + data[5:],
    }
    for message, bad in cases.items():
        with pytest.raises(CodecFileError, match=message.replace("(", r"\(")) as e:
            read_codes(io.BytesIO(bad), "x.sgc")
        assert str(e.value).startswith("x.sgc: ") and "\n" not in str(e.value)


def test_bitrates_parse_and_map_to_quantisers():
    assert parse_bitrate("3k") == 3000 and parse_bitrate("1.5k") == 1500 and parse_bitrate(2400) == 2400
    with pytest.raises(ValueError, match="bitrate 'fast'"):
        parse_bitrate("fast")
    j = job()
    # 62.5 frames/s, stride 2, 8-bit codes: 250 bit/s per quantiser
    assert j.bitrates() == pytest.approx([250, 500, 750, 1000])
    assert j.quantisers_for("0.5k") == 2 and j.quantisers_for("740") == 2 and j.quantisers_for(1000) == 4
    with pytest.raises(ValueError, match="below this model's lowest, 0.25k"):
        j.quantisers_for("100")
    with pytest.raises(ValueError, match=r"above this model's highest, 1k \(it has 0.25k, 0.5k, 0.75k, 1k\)"):
        j.quantisers_for("3k")


def test_codec_shapes_dropout_and_id():
    torch.manual_seed(0)
    g = build_codec(SPEC, MEL).eval()
    x = torch.randn(2, MEL.n_mels, 37) - 4
    for k in (1, 4):
        codes = g.encode(x, k)
        assert codes.shape == (2, k, 19) and int(codes.max()) < 256
        assert g.decode(codes).shape == (2, MEL.n_mels, 38)
    out, codes, commit, book = g(x, torch.tensor([1, 4]))
    assert out.shape == x.shape and codes.shape == (2, 4, 19) and commit.item() > 0
    # the first clip kept one quantiser: its output is the first codes' decoding
    torch.testing.assert_close(out[:1], g.decode(codes[:1, :1])[..., :37])
    assert (out >= MEL.log_floor - 1e-6).all()
    from specgan.codec.model import codec_id

    half = build_codec(SPEC, MEL)
    half.load_state_dict({k: v.half().float() for k, v in g.state_dict().items()})
    assert codec_id(half) == codec_id(g)                 # a float16 copy reads the same files
    other = build_codec(SPEC, MEL)
    assert codec_id(other) != codec_id(g)


def test_streamed_encoding_and_decoding_equal_the_whole_file():
    from vocoder.registry import build_generator

    voc = build_generator({"name": "griffinlim"}, MEL).eval()
    y = np.concatenate([speechy(1.0, seed=i) for i in range(4)])[: 4 * SR - 123]
    small, whole = job(chunk=64, vocoder=voc), job(chunk=100_000, vocoder=voc)
    a, b = small.encode(y, SR, "1k"), whole.encode(y, SR, "1k")
    codes_a, codes_b = read_codes(io.BytesIO(a), "a")[1], read_codes(io.BytesIO(b), "b")[1]
    assert (codes_a == codes_b).mean() > 0.99  # 16 frames of context cover the encoder's field (ties aside)
    assert len(a) == 40 + -(-codes_a.size * 8 // 8)
    ct = torch.from_numpy(np.ascontiguousarray(codes_b.T))
    m_small = torch.cat([small.mel_of_codes(ct, s, min(s + 64, 250)) for s in range(0, 250, 64)], 1)
    torch.testing.assert_close(m_small, whole.mel_of_codes(ct, 0, 250), atol=1e-4, rtol=0)
    out, rate = whole.decode(b)
    assert rate == SR and out.shape == y.shape
    stereo44 = np.stack([y, y], 1)
    import soxr

    again = whole.encode(soxr.resample(stereo44, SR, 44100), 44100, "1k")  # any rate and channels in
    assert Header.unpack(again[:40]).samples == pytest.approx(len(y), abs=2)


@pytest.mark.slow  # trains (seconds)
def test_a_short_training_lowers_the_decoded_error(tmp_path):
    from specgan.codec.trainer import CodecTrainer
    from specgan.enhancement.sets import mel_statistics

    clips = [speechy(1.5, f0=110 + 15 * i, seed=i) for i in range(6)]
    cfg = CodecConfig(model=dict(SPEC), critic={"name": "patch", "d": 8, "layers": 2}, batch_size=4, steps=60,
                      log_every=60, save_every=60, eval_every=60, lr_g=3e-3, critic_warmup_steps=30,
                      restart_every=20, segment_seconds=0.5)
    tr = CodecTrainer(cfg, MEL, clips, clips[:2], mel_statistics(MEL, clips), tmp_path / "c", seed=0)
    first = tr.validate()
    last = tr.fit(progress=False, tensorboard=False)
    assert last["dev/l1_q4"] < 0.7 * first["dev/l1_q4"], (first, last)
    assert "gen/adv" in last and last["codes/used"] > 0
    from specgan.codec.inference import load_codec

    g, mel, step = load_codec(tmp_path / "c")
    assert step == 60 and mel == MEL and g.n_q == 4


def cli(*args):
    return subprocess.run([sys.executable, "-m", "specgan.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def save(tmp_path, name, seed):
    from vocoder.checkpoint import save_model

    torch.manual_seed(seed)
    g = build_codec(SPEC, MEL)
    return save_model(tmp_path / f"{name}.safetensors", g, kind="codec", name="rvq",
                      kwargs={k: v for k, v in SPEC.items() if k != "name"} | {"n_mels": MEL.n_mels,
                                                                               "floor_log": float(MEL.log_floor)},
                      step=0, mel=MEL)


@pytest.mark.slow  # CLI runs (torch start-up each)
def test_encode_decode_at_the_cli_and_the_mistakes(tmp_path, capsys):
    model, other = save(tmp_path, "codec", 0), save(tmp_path, "other", 1)
    wav = tmp_path / "speech.wav"
    sf.write(wav, np.stack([speechy(2.0), speechy(2.0)], 1), 22050)  # stereo, another rate (1.45 s)
    before = wav.read_bytes()
    common = ["--recipe", "codec", "--model", str(model), "--no-progress"]
    enc = cli("encode", str(wav), "--bitrate", "0.8k", *common)
    sgc = tmp_path / "speech.sgc"
    assert enc.returncode == 0, enc.stderr[-1500:]
    assert "0.75 kbps nominal (3 quantisers)" in enc.stdout and sgc.is_file() and wav.read_bytes() == before
    from specgan.cli import main

    assert main(["decode", str(sgc), "--vocoder", "griffinlim", *common]) == 0  # in this process: one start-up
    info = sf.info(tmp_path / "speech.decoded.wav")
    assert (info.samplerate, info.channels) == (SR, 1) and abs(info.frames - 2 * SR * SR / 22050) <= 2
    # the mistakes, each one line and no traceback, nothing written over
    (tmp_path / "cut.sgc").write_bytes(sgc.read_bytes()[:-5])
    (tmp_path / "foreign.sgc").write_bytes(before[:500])

    cases = [
        (["decode", str(tmp_path / "cut.sgc"), "--vocoder", "griffinlim", *common], "truncated"),
        (["decode", str(tmp_path / "foreign.sgc"), "--vocoder", "griffinlim", *common], "not a specgan codec file"),
        (["decode", str(sgc), "--vocoder", "griffinlim", "-o", str(tmp_path / "x.wav"), "--recipe", "codec",
          "--model", str(other), "--no-progress"], "encoded by another codec model"),
        (["encode", str(wav), "--bitrate", "6k", *common], "above this model's highest"),
        (["encode", str(wav), "--bitrate", "1k", *common], "speech.sgc exists; --force replaces it"),
        (["encode", str(wav), "-o", str(wav), "--bitrate", "1k", "--force", *common], "would overwrite the input"),
        (["encode", str(tmp_path / "none.wav"), "--bitrate", "1k", *common], "no such file"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert wav.read_bytes() == before and not (tmp_path / "x.wav").exists()


@pytest.mark.slow
def test_a_ten_minute_file_round_trips_in_bounded_memory(tmp_path):
    from vocoder.checkpoint import save_generator
    from vocoder.registry import build_generator

    model = save(tmp_path, "codec", 0)
    spec = {"name": "istft", "dim": 16, "intermediate_dim": 32, "num_layers": 1}  # fast: memory, not sound
    voc = save_generator(tmp_path / "voc.safetensors", build_generator(spec, MEL), spec, step=0)
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, speechy(3.0), SR)
    with sf.SoundFile(long, "w", SR, 1, subtype="PCM_16") as f:
        for i in range(10):
            f.write(np.tile(speechy(1.0, seed=i), 60))
    code = ("import resource, sys; from specgan.cli import main\n"
            "for name in ('short', 'long'):\n"
            "    d = sys.argv[1]\n"
            "    a = main(['encode', f'{d}/{name}.wav', '--bitrate', '1k', *sys.argv[2:-2]])\n"
            "    b = main(['decode', f'{d}/{name}.sgc', '--vocoder', sys.argv[-1], *sys.argv[2:-2]])\n"
            "    print('MAXRSS', name, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, a, b)\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--recipe", "codec", "--model", str(model),
                          "--no-progress", "--vocoder", str(voc)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    peaks = {ln.split()[1]: (int(ln.split()[2]) / 1024, ln.split()[3:]) for ln in run.stdout.splitlines()
             if ln.startswith("MAXRSS")}
    assert peaks["short"][1] == peaks["long"][1] == ["0", "0"]
    assert sf.info(tmp_path / "long.decoded.wav").frames == 600 * SR
    code_frames = -(-(600 * SR // 256 + 1) // 2)  # 62.5 mel frames/s, 2 per code frame
    assert (tmp_path / "long.sgc").stat().st_size == 40 + code_frames * 4  # 4 quantisers x 8 bits: 1 kbps
    # the input's memory map (38 MB) and the codes (a few MB as int64) may add; the audio, mel and
    # output held whole would add over 200 MB
    assert peaks["long"][0] - peaks["short"][0] < 100, peaks


@need_tool("ffmpeg")
def test_the_codec_recipe_runs_and_scores_the_peers(tmp_path):
    """`specgan run` on a codec recipe (a folder of clean clips): prepare, train, evaluate against Opus and Codec2."""
    from specgan.pipeline import run

    recipe = clean_speech_recipe(tmp_path, "codec.yaml", [
        f"codec.model={SPEC}", "codec.critic={name: patch, d: 4, layers: 2}",
        "codec.steps=3", "codec.eval_every=3", "codec.save_every=3", "codec.eval_items=2", "codec.critic_warmup_steps=1",
        "codec.test_items=1", "codec.eval_seconds=2.0", "codec.bitrates=[0.5k, 1k]", "codec.batch_size=2"])
    done = run(recipe, report=lambda _: None, progress=False)
    assert "trained to step 3" in done["specgan"] and "not used" in done["features"]
    import json

    out = json.loads((tmp_path / "work" / "eval" / "codec.json").read_text())
    assert out["files"] == 1 and out["seconds"] >= 2.0
    assert set(out["overall"]) == {"vocoded", "specgan@0.5k", "specgan@1k", "opus@6k", "opus@8k", "opus@12k",
                                   "codec2@1300", "codec2@2400", "codec2@3200"}
    o = out["overall"]
    # bitrates counted from the files: the codes' rate plus the 40-byte header over ~2.5 s
    assert 0.5 < o["specgan@0.5k"]["kbps"] < 0.5 + 0.33 and 1.0 < o["specgan@1k"]["kbps"] < 1.0 + 0.33
    assert o["codec2@3200"]["kbps"] == pytest.approx(3.2, abs=0.1)
    assert o["opus@12k"]["pesq_wb"] > o["opus@6k"]["pesq_wb"]
    assert all(np.isfinite(v) for s in o.values() for v in s.values())
    assert (tmp_path / "work" / "eval" / "codec" / "clip0_opus_6k.wav").is_file()
    assert "up to date" in run(recipe, 5, 5, report=lambda _: None, progress=False)["evaluate"]
    from specgan.report import write_report  # the page: the table and a player per system

    page = write_report(recipe).read_text()
    assert page.count("<audio") == 10 and "codec2@3200" in page and "decode x real time" in page


def test_alignment_finds_a_codec_delay_from_the_envelopes():
    from specgan.codec.evaluate import align

    y = np.concatenate([speechy(1.0, seed=i) for i in range(3)])
    for delay in (0, 5, 123, -300):
        est = np.roll(y, delay) + 0.01 * np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)
        np.testing.assert_allclose(align(y, est, SR)[1000:-1000], y[1000:-1000], atol=0.05)


def test_the_rate_quality_figure_groups_systems_by_family_and_rate(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    from codec_rate_quality import curves, plot

    s = {"pesq_wb": 1.0, "stoi": 0.8, "dnsmos_ovrl": 2.5}
    overall = {"specgan@3k": {**s, "kbps": 2.83}, "specgan@1.5k": {**s, "kbps": 1.27}, "opus@6k": {**s, "kbps": 6.6},
               "codec2@3200": {**s, "kbps": 3.2}, "vocoded": s}
    c = curves(overall)
    assert sorted(c) == ["codec2", "opus", "specgan"]  # the ceiling is a line, not a system
    assert [k for k, _ in c["specgan"]] == [1.27, 2.83]
    assert plot(overall, tmp_path / "rq.png", "t").stat().st_size > 1000
    with pytest.raises(SystemExit, match="no specgan"):
        plot({"opus@6k": overall["opus@6k"]}, tmp_path / "x.png", "t")


def test_init_from_fine_tunes_a_codec_from_a_model_file(tmp_path, capsys):
    """--init-from on the codec stage: a model file (a shipped one, say) gives the codec its weights,
    codebooks and statistics (the critic starts fresh); another kind, family or width is one line."""
    from specgan.cli import main
    from specgan.codec.inference import load_codec
    from specgan.training import train_codec

    sets = [f"codec.model={SPEC}", "codec.critic={name: patch, d: 4, layers: 2}", "codec.eval_items=1",
            "codec.batch_size=2", "codec.critic_warmup_steps=100", "codec.restart_every=1000", "codec.lr_g=1e-12"]
    recipe = clean_speech_recipe(tmp_path, "codec.yaml", sets)
    from specgan.data.prepare import prepare

    prepare(recipe)
    src = save(tmp_path, "source", seed=7)
    res = train_codec(recipe, steps=2, progress=False, init_from=str(src), out=tmp_path / "ft")
    assert res["step"] == 2
    want, got = load_codec(src)[0].state_dict(), load_codec(tmp_path / "ft")[0].state_dict()
    assert set(want) == set(got)
    kept = [k for k in want if "decoder" in k or "codebook" in k or k in ("mean", "std")]
    assert kept and all(torch.allclose(want[k], got[k], atol=1e-6) for k in kept)  # lr ~0: as loaded
    fresh = load_codec(save(tmp_path, "other", seed=8))[0].state_dict()
    assert not all(torch.allclose(fresh[k], got[k], atol=1e-6) for k in got if "decoder" in k)  # tells them apart

    wide = {**SPEC, "channels": 24}
    with pytest.raises(ValueError, match="do not fit codec.model"):
        train_codec(recipe, steps=1, progress=False, out=tmp_path / "ft2", force=True,
                    init_from=str(_save_spec(tmp_path, wide)))
    with pytest.raises(FileNotFoundError, match="not found"):
        train_codec(recipe, steps=1, progress=False, out=tmp_path / "ft3", init_from=str(tmp_path / "none.safetensors"))
    # the CLI: a vocoder file given to the codec stage, one line, and nothing trained or set aside
    capsys.readouterr()
    voc = ROOT / "pretrained" / "speech" / "vocoder.safetensors"
    rc = main(["train", "--recipe", str(ROOT / "recipes" / "codec.yaml"), "--stage", "codec", "--no-progress",
               *[a for s in [f"work_dir={tmp_path / 'work'}", f"data.source=folder:{tmp_path / 'clean'}",
                             "data.dev_fraction=0.2", "data.test_fraction=0.2", *sets] for a in ("--set", s)],
               "--init-from", str(voc)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "kind 'vocoder'; the codec stage" in err[0], err
    assert not (tmp_path / "work" / "codec").exists()


def _save_spec(tmp_path, spec):
    from vocoder.checkpoint import save_model

    g = build_codec(spec, MEL)
    return save_model(tmp_path / "spec.safetensors", g, kind="codec", name="rvq",
                      kwargs={k: v for k, v in spec.items() if k != "name"} | {"n_mels": MEL.n_mels,
                                                                              "floor_log": float(MEL.log_floor)},
                      step=0, mel=MEL)
