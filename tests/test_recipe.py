"""Recipes: typed loading, errors naming key paths, overrides, layering, resolved output."""

from pathlib import Path

import pytest
import yaml

from specgan.recipe import Recipe, RecipeError, apply_overrides, load_recipe, save_resolved, to_dict

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_load(path):
    """Every shipped recipe loads (every check at load time passes), and the models it names in
    ``pretrained:`` are there."""
    r = load_recipe(path)
    assert isinstance(r, Recipe) and r.name and r.mel.sample_rate > 0 and r.data.source
    for key in ("specgan", "vocoder"):
        named = getattr(r.pretrained, key)
        assert named is None or r.resolve(named).is_file(), f"{path.name}: pretrained.{key} {named}"
    if path.stem in ("tiny", "speech", "music"):
        assert r.name == path.stem and r.data.source.startswith("builtin:")


def test_tiny_extends_speech():
    tiny, speech = load_recipe(RECIPES / "tiny.yaml"), load_recipe(RECIPES / "speech.yaml")
    assert tiny.mel == speech.mel
    assert tiny.data.digits.accents == ["en-us"] and speech.data.digits.repeats == 3
    assert tiny.data.digits.words == speech.data.digits.words  # inherited default


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_its_path_and_the_allowed_keys(tmp_path):
    p = write(tmp_path, "data:\n  digits:\n    speeds: [100, 200]\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "data.digits.speeds: unknown key" in msg
    assert "allowed keys: " in msg and all(k in msg.split("allowed keys: ")[1] for k in ("words", "variants", "speed"))
    with pytest.raises(RecipeError, match=r"^.*melz: unknown key in recipe; allowed keys: name, work_dir"):
        load_recipe(write(tmp_path, "melz: {}\n"))


@pytest.mark.parametrize("text,expected", [
    ("mel:\n  n_fft: 1024.5\n", "mel.n_fft: expected an integer, got float 1024.5"),
    ("mel:\n  center: 'yes'\n", "mel.center: expected a boolean"),
    ("data:\n  digits:\n    repeats: three\n", "data.digits.repeats: expected an integer, got str 'three'"),
    ("data:\n  notes:\n    programs: [0, piano]\n", "data.notes.programs[1]: expected an integer"),
    ("data:\n  notes:\n    split_by: voice\n", "data.notes.split_by: expected one of 'note', 'program', got 'voice'"),
    ("features:\n  dtype: float64\n", "features.dtype: expected one of 'float32', 'float16'"),
    ("data: 3\n", "data: expected a mapping"),
    ("data:\n  music:\n    test_programs: [7]\n", "data.music.test_programs: [7] not in programs"),
    ("data:\n  music:\n    dev_programs: [42]\n", "data.music.dev_programs: [42] also in test_programs"),
    ("data:\n  music:\n    dev_pieces: [bach/bwv10.7.mxl]\n", "data.music.dev_pieces: ['bach/bwv10.7.mxl'] also in"),
    ("data:\n  music:\n    programs: [42, 71, 105, 11, 65]\n", "data.music.programs: none left for train"),
    ("data:\n  music:\n    test_programs: []\n", "data.music.test_programs: empty, but test_pieces need programs"),
    ("data:\n  music:\n    tempo: [1.2, 0.8]\n", "data.music.tempo: expected [low, high]"),
    ("mel:\n  sample_rate: 16000\n  fmax: 9000\n", "mel: invalid MelConfig: fmax=9000.0 is above the Nyquist"),
])
def test_wrong_types_name_the_key(tmp_path, text, expected):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, text))
    assert expected in str(e.value)


def test_defaults_and_int_to_float(tmp_path):
    r = load_recipe(write(tmp_path, "mel:\n  fmin: 30\n"))
    assert r.mel.fmin == 30.0 and isinstance(r.mel.fmin, float)
    assert r.features.workers == 2 and r.data.preprocess.normalize == "peak"
    assert load_recipe(write(tmp_path, "")).name == "experiment"


def test_overrides_are_validated_like_yaml(tmp_path):
    p = RECIPES / "tiny.yaml"
    r = load_recipe(p, ["mel.n_mels=80", "data.digits.accents=[en-gb, en-us]", "data.max_items=null", "name=x"])
    assert r.mel.n_mels == 80 and r.data.digits.accents == ["en-gb", "en-us"] and r.name == "x"
    with pytest.raises(RecipeError, match="mel.n_melz: unknown key"):
        load_recipe(p, ["mel.n_melz=80"])
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(p, ["mel.n_mels"])
    with pytest.raises(RecipeError, match="mel.n_mels is not a section"):
        apply_overrides({"mel": {"n_mels": 3}}, ["mel.n_mels.x=1"])


def test_extends_cycle_and_missing_file(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(write(tmp_path, "mel: [\n"))


def test_resolved_recipe_roundtrips(tmp_path):
    r = load_recipe(RECIPES / "music.yaml", ["seed=7"])
    out = save_resolved(r, tmp_path / "stage")
    raw = yaml.safe_load(out.read_text())
    assert raw["seed"] == 7 and raw["mel"]["window"] == "hann"  # defaults are filled in
    again = load_recipe(out)
    assert to_dict(again) == to_dict(r)
    assert again.fingerprint() == r.fingerprint()
    assert r.fingerprint("data") != load_recipe(RECIPES / "music.yaml", ["data.notes.pitch_min=40"]).fingerprint("data")


def test_vocoder_inference_switches_follow_their_generator(tmp_path):
    """speech.yaml trains its vocoder with the offline heap and 16 iterations and writes model files
    that run frame PGHI with 8 (``vocoder.inference``); a recipe or --set naming another generator
    does not inherit those switches; switches that would change a tensor, or no such parameter, fail
    at load in one line naming vocoder.inference."""
    speech = load_recipe(RECIPES / "speech.yaml")
    assert speech.vocoder.generator["refine_iter"] == 16 and "pghi_mode" not in speech.vocoder.generator
    assert speech.vocoder.inference == {"pghi_mode": "frames", "pghi_tol": 1e-3, "refine_iter": 8}
    (tmp_path / "mine.yaml").write_text(f"extends: {RECIPES / 'speech.yaml'}\n"
                                        "vocoder:\n  generator: {name: istft, dim: 32}\n")
    assert load_recipe(tmp_path / "mine.yaml").vocoder.inference == {}
    assert load_recipe(RECIPES / "speech.yaml", ["vocoder.generator={name: istft}"]).vocoder.inference == {}
    kept = load_recipe(RECIPES / "speech.yaml", ["vocoder.inference.refine_iter=4",
                                                          "vocoder.generator.refine_iter=12"]).vocoder
    assert (kept.generator["refine_iter"], kept.inference["refine_iter"]) == (12, 4)  # same model: kept
    for sets, needle in ((["vocoder.inference.amp_layers=4"], "changes the generator's tensors (amp.blocks.3"),
                         (["vocoder.inference.bogus=1"], "unknown parameter(s) bogus"),
                         (["vocoder.inference={name: istft}"], "'name' is not allowed")):
        with pytest.raises(RecipeError, match="vocoder.inference") as e:
            load_recipe(RECIPES / "speech.yaml", sets)
        assert needle in str(e.value) and "\n" not in str(e.value)
