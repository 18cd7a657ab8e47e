#!/usr/bin/env bash
# Set up specgan on a fresh Debian/Ubuntu machine: system tools for the builtin datasets, then
# a virtualenv in .venv with the package (editable) and its test extra.
# Usage: bash tools/setup.sh        (idempotent; re-running is quick)
set -euo pipefail
cd "$(dirname "$0")/.."

# espeak-ng renders builtin:digits, fluidsynth + a GM soundfont render builtin:notes;
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v fluidsynth >/dev/null || need+=(fluidsynth)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
# builtin:voices: ffmpeg decodes the real fr/it/ru asterisk prompts (G.722); flite speaks too.
# (Never the -en/-es prompt packages: they are reserved for independent evaluation.)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v flite >/dev/null || need+=(flite)
# builtin:digits from several engines (data.digits.engines): festival and its three voices, sox
# for tempo and pitch variety.
command -v festival >/dev/null || need+=(festival)
for v in kal_diphone:festvox-kallpc16k ked_diphone:festvox-kdlpc16k cmu_us_slt_arctic_hts:festvox-us-slt-hts; do
  ls -d /usr/share/festival/voices/*/"${v%%:*}" >/dev/null 2>&1 || need+=("${v##*:}")
done
command -v sox >/dev/null || need+=(sox)
for v in fr_CA_f_June:fr it_IT_m_Carlo:it ru_RU_f_IvrvoiceRU:ru; do
  [ -d "/usr/share/asterisk/sounds/${v%%:*}" ] || need+=("asterisk-core-sounds-${v##*:}-g722")
done
# PocketSphinx (en-us acoustic model): tools/recognise_digits.py, an independent listener for digits.
command -v pocketsphinx_continuous >/dev/null || need+=(pocketsphinx)
[ -d /usr/share/pocketsphinx/model/en-us/en-us ] || need+=(pocketsphinx-en-us)
# recorded noise for enhancement (specgan/enhancement/recorded.py): OpenSFX, OpenTTD's CC-licensed
# sound set (vehicles, machinery, nature, impacts recorded for freesound.org and pdsounds.org).
[ -f /usr/share/games/openttd/baseset/opensfx/opensfx.cat ] || need+=(openttd-opensfx)
# and a keyboard (the `keyboard` noise type): an IBM Model M's keys, recorded for bucklespring.
[ -d /usr/share/buckle/wav ] || need+=(bucklespring-data)
# headless chromium: the test that opens eval/report.html and checks its audio players load.
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null || {
      apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
  else
    echo "setup: missing system packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch 2.14.1 is the release served from local disk on the project machines; the music extra
# (music21, also in the test extra) renders builtin:music's excerpts from its offline corpus.
.venv/bin/pip install -q -e '.[test,music]'
echo "setup: ready (.venv)"
