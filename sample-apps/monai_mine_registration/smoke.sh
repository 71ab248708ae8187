#!/usr/bin/env bash
# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
#
# Smoke test of the MONAI Label sample app, end to end through its HTTP API:
#   1. a studies folder from the demo pairs (python -m monai_mine.apps.label.studies) in a temporary folder;
#   2. `monailabel start_server` for that folder on a free port, in the background; wait for /info/;
#   3. infer moving_000 -> fixed_000 with vtn_addd's shipped weights: the warped image and the DDF (one request
#      each, chosen with params "result_image"), checked as NIfTI of the expected shapes, plus the result JSON;
#   4. one training epoch through /train/vtn_addd, polled on /train/ until it finishes, then models/model.pt checked;
#   5. the server is stopped and the temporary folder removed (trap on EXIT, also on failure).
#
# The app runs from a copy of main.py in the temporary folder, so its bundle copies (model/), logs/ and the weights
# the training writes stay there and the checkout's sample-apps/monai_mine_registration is left as it is.
#
# Run it from the MONAI Label environment (docs/label.md, "Its own environment"):
#   source .venv-label/bin/activate && sample-apps/monai_mine_registration/smoke.sh
# Time: about 25 s on an idle 2-core machine once the demo data exist; the first run in an environment generates the
# demo data first (step 1) and imports MONAI Label cold, and on a busy 2-core machine it took 3 min 23 s. The last
# line says how long this run took.
# Environment: SMOKE_DEVICE (cpu; cuda for a GPU), SMOKE_PAIRS (2 demo pairs), SMOKE_KEEP=1 keeps the temporary
# folder, SMOKE_START_TIMEOUT (300 s), SMOKE_TRAIN_TIMEOUT (1800 s).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEVICE="${SMOKE_DEVICE:-cpu}"
PAIRS="${SMOKE_PAIRS:-2}"
START_TIMEOUT="${SMOKE_START_TIMEOUT:-300}"
TRAIN_TIMEOUT="${SMOKE_TRAIN_TIMEOUT:-1800}"
MODEL=vtn_addd
SIZE=64 # vtn_addd's working grid (image_size of its shipped weights' record): the outputs' shape

for command in monailabel python curl; do
    if ! command -v "$command" >/dev/null; then
        echo "smoke: $command not found; activate the MONAI Label environment first (source .venv-label/bin/activate)" >&2
        exit 1
    fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/monai_mine_smoke.XXXXXX")"
SERVER_PID=""

cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        # the server runs in its own process group (setsid): stop it and a training it may have started
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$WORK/server.log" ]]; then
        echo "smoke: FAILED; last lines of the server log:" >&2
        tail -n 40 "$WORK/server.log" >&2 || true
    fi
    if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then
        echo "smoke: kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $status
}
trap cleanup EXIT

fail() {
    echo "smoke: $*" >&2
    exit 1
}

echo "smoke: working in $WORK"
cd "$REPO"

# 1. studies folder: moving_000, fixed_000, ... with labels/final/
python -m monai_mine.apps.label.studies "$WORK/studies" --pairs "$PAIRS"

# 2. the server, on a free port, from a copy of the app
mkdir -p "$WORK/app"
cp "$REPO/sample-apps/monai_mine_registration/main.py" "$WORK/app/"
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
URL="http://127.0.0.1:$PORT"
# what infer requests leave in the temporary folder (the returned file is deleted by the server once sent)
temporary_leftovers() { find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'monai_mine_*' ! -name 'monai_mine_smoke.*' | wc -l; }
LEFTOVERS_BEFORE="$(temporary_leftovers)"
launcher=() # setsid: the server in a process group of its own (this script has no job control, so setsid does not fork)
command -v setsid >/dev/null && launcher=(setsid)
${launcher[@]+"${launcher[@]}"} monailabel start_server --app "$WORK/app" --studies "$WORK/studies" --conf models "$MODEL" \
    --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
echo "smoke: server pid $SERVER_PID on $URL (log: $WORK/server.log)"
deadline=$((SECONDS + START_TIMEOUT))
until curl -sf "$URL/info/" -o "$WORK/info.json"; do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited before answering /info/"
    ((SECONDS < deadline)) || fail "no answer from $URL/info/ within ${START_TIMEOUT} s"
    sleep 2
done
python -c "
import json, sys
info = json.load(open(sys.argv[1]))
assert sys.argv[2] in info['models'], f'no infer model {sys.argv[2]} in /info/: {sorted(info[\"models\"])}'
assert sys.argv[2] in info['trainers'], f'no trainer {sys.argv[2]} in /info/: {sorted(info[\"trainers\"])}'
print('smoke: /info/ lists', sys.argv[2], 'as infer model and trainer')
" "$WORK/info.json" "$MODEL"

# 3. infer: one request per output; an error answers with its text ({"detail": ...})
infer() { # infer <output file> <params JSON> <output: image|json>
    local code
    code="$(curl -sS -o "$1" -w '%{http_code}' -X POST "$URL/infer/$MODEL?image=moving_000&output=$3" -F "params=$2")"
    [[ "$code" == 200 ]] || fail "infer $2 answered HTTP $code: $(cat "$1")"
}
infer "$WORK/warped.nii.gz" "{\"fixed_image\": \"fixed_000\", \"device\": \"$DEVICE\"}" image
infer "$WORK/ddf.nii.gz" "{\"fixed_image\": \"fixed_000\", \"result_image\": \"ddf\", \"device\": \"$DEVICE\"}" image
infer "$WORK/result.json" "{\"fixed_image\": \"fixed_000\", \"result_image\": \"ddf\", \"device\": \"$DEVICE\"}" json
python -c "
import json, sys
import nibabel as nib
import numpy as np
warped_path, ddf_path, result_path, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
warped, ddf = nib.load(warped_path), nib.load(ddf_path)  # raises for a file that is not NIfTI
assert isinstance(warped, nib.Nifti1Image) and isinstance(ddf, nib.Nifti1Image), (type(warped), type(ddf))
assert warped.shape == (size,) * 3, f'warped image shape {warped.shape}, expected {(size,) * 3}'
assert ddf.shape == (size,) * 3 + (3,), f'DDF shape {ddf.shape}, expected {(size,) * 3 + (3,)}'
assert warped.get_data_dtype() == np.float32 and ddf.get_data_dtype() == np.float32
assert np.isfinite(ddf.get_fdata()).all() and np.isfinite(warped.get_fdata()).all()
np.testing.assert_allclose(warped.affine, ddf.affine)
result = json.load(open(result_path))
assert result['ddf_shape'] == list(ddf.shape), f'result JSON ddf_shape {result[\"ddf_shape\"]}, file {ddf.shape}'
assert result['ddf_units'] == 'voxels' and result['result_image'] == 'ddf', result
print(f'smoke: warped {warped.shape} and DDF {ddf.shape} float32 NIfTI; result JSON ddf_shape {result[\"ddf_shape\"]}')
" "$WORK/warped.nii.gz" "$WORK/ddf.nii.gz" "$WORK/result.json" "$SIZE"
sleep 1 # the server deletes each returned file once sent
LEFTOVERS_AFTER="$(temporary_leftovers)"
((LEFTOVERS_AFTER <= LEFTOVERS_BEFORE)) ||
    fail "infer left $((LEFTOVERS_AFTER - LEFTOVERS_BEFORE)) monai_mine_* file(s)/folder(s) in ${TMPDIR:-/tmp}"
echo "smoke: nothing left behind in ${TMPDIR:-/tmp} by the infer requests"

# 4. one training epoch on every image of the datastore; it writes the app's models/model.pt when it validates
WEIGHTS="$WORK/app/model/$MODEL/models/model.pt"
[[ -f "$WEIGHTS" ]] || fail "no $WEIGHTS after the start"
BEFORE="$(python -c 'import os, sys; print(os.stat(sys.argv[1]).st_mtime_ns)' "$WEIGHTS")"
curl -sSf -X POST "$URL/train/$MODEL" -H "Content-Type: application/json" \
    -d "{\"max_epochs\": 1, \"device\": \"$DEVICE\", \"val_split\": 0.0, \"multi_gpu\": false}" -o "$WORK/train.json" ||
    fail "POST /train/$MODEL failed: $(cat "$WORK/train.json" 2>/dev/null)"
echo "smoke: training started: $(cat "$WORK/train.json")"
deadline=$((SECONDS + TRAIN_TIMEOUT))
while true; do
    sleep 5
    curl -sSf "$URL/train/" -o "$WORK/train_status.json" || fail "GET /train/ failed"
    status="$(python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("status", ""))' "$WORK/train_status.json")"
    case "$status" in
    DONE) break ;;
    ERROR | STOPPED)
        python -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1])).get("details", [])))' \
            "$WORK/train_status.json" >&2
        fail "training ended with status $status (its last log lines above)"
        ;;
    esac
    ((SECONDS < deadline)) || fail "training still $status after ${TRAIN_TIMEOUT} s"
done
AFTER="$(python -c 'import os, sys; print(os.stat(sys.argv[1]).st_mtime_ns)' "$WEIGHTS")"
((AFTER > BEFORE)) || fail "training finished but did not write $WEIGHTS"
echo "smoke: one epoch trained; $WEIGHTS written"

echo "smoke: OK in ${SECONDS} s"
