#!/usr/bin/env bash
# Runs a torch_parity/ script (parity.py, random_programs.py) with a Python that has torch
# (Debian's python3-torch lives in /usr/bin/python3's dist-packages, which a pyenv or venv
# python3 earlier on PATH does not see).
# Usage: torch_parity.sh EXECUTABLE SCRIPT [ARGS...] (passed on to the script). Without torch,
# the script itself says so and exits 77 (a skip).
set -euo pipefail
for py in /usr/bin/python3 python3; do
  if command -v "$py" > /dev/null && "$py" -c 'import torch' 2> /dev/null; then
    exec "$py" "$2" "$1" "${@:3}"
  fi
done
exec python3 "$2" "$1" "${@:3}"
