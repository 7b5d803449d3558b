#!/usr/bin/env bash
# Set up everything StrideTwin needs on a fresh Debian/Ubuntu machine: system libraries for offscreen rendering and Qt,
# a virtual environment in .venv, and the project with all extras. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${STRIDETWIN_VENV:-.venv}
PYTHON=${PYTHON:-python3}

# EGL/Mesa for MuJoCo's offscreen renderer (MUJOCO_GL=egl, or osmesa where no EGL device exists);
# the rest are the shared libraries Qt's offscreen platform loads.
APT_PACKAGES=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6 libglib2.0-0 libfontconfig1 libxkbcommon0 libdbus-1-3)

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    echo "bootstrap: cannot install system packages (not root, no sudo): ${missing[*]}" >&2
  else
    echo "bootstrap: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch is pinned in pyproject (torch==2.13.0, the CPU build); pip finds it in the machine's wheel directory.
"$VENV/bin/python" -m pip install -q -e '.[app,trainer,cluster,dev]'
touch "$VENV/.stridetwin-installed"
echo "bootstrap: ready ($VENV)"
