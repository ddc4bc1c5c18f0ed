#!/usr/bin/env bash
# Installs the Debian packages glassbox needs beyond npm (run as root; a no-op when they are present):
#   tests:   libonnx-testdata (ONNX conformance node tests), chromium (the real-browser test),
#            dataset-fashion-mnist (Fashion-MNIST, /usr/share/datasets/fashion-mnist)
#   --bench: python3-torch and OpenBLAS (the PyTorch baseline of bench/, with a fast BLAS so the baseline is fair)
#   --fixtures: python3-torch and python3-torchvision (regenerating fixtures/torch with scripts/export_fixtures.py)
set -euo pipefail
pkgs=(libonnx-testdata chromium dataset-fashion-mnist)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(python3-torch python3-torchvision libopenblas0-pthread) ;;
    --fixtures) pkgs+=(python3-torch python3-torchvision) ;;
    *) echo "setup.sh: unknown option $arg (use --bench or --fixtures)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
