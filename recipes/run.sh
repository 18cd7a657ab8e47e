#!/usr/bin/env bash
# A recipe, stage by stage, for those used to run.sh (ESPnet / ParallelWaveGAN style). Each
# recipes/<name>/run.sh is a link to this file and runs recipes/<name>.yaml:
#   recipes/<name>/run.sh [--stage N] [--stop-stage M] [--force] [--set key.path=value ...]
# Stages: 0 prepare, 1 features, 2 specgan, 3 vocoder, 4 synth, 5 evaluate (numbers or names).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # the link's folder, not the target's
name="$(basename "$here")"
root="$(cd "$here/../.." && pwd)"
[ -f "$root/recipes/$name.yaml" ] || { echo "run.sh: no recipes/$name.yaml (call it as recipes/<name>/run.sh)" >&2; exit 2; }
specgan="${SPECGAN:-$root/.venv/bin/specgan}"
[ -x "$specgan" ] || specgan=specgan
cd "$root"
exec "$specgan" run --recipe "recipes/$name.yaml" "$@"
