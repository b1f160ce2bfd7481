#!/usr/bin/env bash
# The GPU figures of docs/scale.md, in one go, on a machine with an NVIDIA GPU and PyTorch
# (run from the repository root; output files go to ${OUT:-gpu-check}/).
#   - the CUDA paths of the student, DKC and the baselines: tests/test_hetcomp.py and
#     tests/test_kd_baselines.py (RecBole puts every model on the GPU when one is visible);
#   - bench_dkc_step.py and bench_scale.py on the GPU (synthetic, up to 100k users x 50k items);
#   - bench_epoch.py: one real ml-1m student epoch (paper protocol), beside its arithmetic
#     floor, on the GPU; ml-1m's atomic files are expected under ${DATA:-.devdata}/ml-1m/.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch, numpy, pandas, scipy, recbole; print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'pandas', pandas.__version__, 'scipy', scipy.__version__, 'recbole', recbole.__version__)"
} 2>&1 | tee "$out/versions.txt"
python3 -m pytest -q -x -p no:cacheprovider tests/test_hetcomp.py tests/test_kd_baselines.py 2>&1 | tail -15 | tee "$out/tests.txt"
python3 benchmarks/bench_dkc_step.py --device cuda --threads 1 --repeats 5 2>&1 | tee "$out/dkc_step.txt"
python3 benchmarks/bench_scale.py --device cuda --sizes 6040x3706 30000x15000 100000x50000 2>&1 | tee "$out/scale.txt"
python3 benchmarks/bench_epoch.py --dataset=ml-1m --data_path="${DATA:-.devdata}" \
  --config_files=properties/protocol/hetcomp-paper.yaml --epochs 2 2>&1 | grep -v "^Max value" | tee "$out/epoch_ml1m.txt"
