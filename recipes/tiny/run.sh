#!/usr/bin/env bash
# The tiny recipe, stage by stage, for those used to run.sh (ESPnet / ParallelWaveGAN style):
#   recipes/tiny/run.sh [--stage N] [--stop-stage M] [--force] [--set key.path=value ...]
# Stages: 0 prepare, 1 features, 2 specgan, 3 vocoder, 4 synth, 5 evaluate (numbers or names).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
specgan="${SPECGAN:-$root/.venv/bin/specgan}"
[ -x "$specgan" ] || specgan=specgan
cd "$root"
exec "$specgan" run --recipe "recipes/tiny.yaml" "$@"
