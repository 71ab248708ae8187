#!/usr/bin/env bash
# The GPU work of a session that is lent one (the device tool; about 15 minutes of device time per task), in one
# call of under 8 minutes:
#   1. the training profile of every bundle on CUDA, in float32 and with AMP (benchmarks/training_profile.py);
#   2. vtn_addd trained at the 128^3 working grid for 5 minutes (not installed: its record and weights come back
#      under $OUT for a decision here).
# The device image has PyTorch but not MONAI, Ignite, nibabel, fire or nilearn: download their wheels here first
# (`bash benchmarks/gpu_session.sh --wheels`, into .whl/, which git ignores) and they travel with the tree.
# Run from the repository root:  bash benchmarks/gpu_session.sh        (on the GPU machine; $OUT comes back)
set -euo pipefail
if [[ "${1:-}" == "--wheels" ]]; then
    python3 -m pip download --dest .whl --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        monai==1.6.1 pytorch-ignite nibabel fire termcolor nilearn
    exit 0
fi
OUT=${OUT:-$(mktemp -d)}
if compgen -G ".whl/*.whl" > /dev/null; then python3 -m pip install -q --no-deps .whl/*.whl; fi
python3 -m pip install -q --no-deps --no-build-isolation -e .
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
for amp in false true; do
    python3 benchmarks/training_profile.py --device cuda --iterations 20 --warmup 5 --threads 8 \
        --overrides "{\"amp\": $amp}" --work_dir "/tmp/profile_amp_$amp" --out_dir "$OUT/profile_amp_$amp" \
        2>&1 | grep -v INFO | tail -n 20
done
python3 benchmarks/train_weights.py --bundle vtn_addd --track mono --image_size 128 --minutes 5 --no_install \
    --work_dir /tmp/gpu_vtn_addd 2>&1 | grep -v INFO | tail -n 5
cp /tmp/gpu_vtn_addd/entry.json "$OUT/vtn_addd_128_entry.json"
cp /tmp/gpu_vtn_addd/run/models/model.pt "$OUT/vtn_addd_128_model.pt"
cp /tmp/gpu_vtn_addd/run/models/model_config.json "$OUT/vtn_addd_128_model_config.json"
