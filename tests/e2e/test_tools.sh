#!/usr/bin/env bash
# End-to-end tests of the tools on the sample videos, at a small geometry (4 frames of 64 px, 32 tokens) so
# they run in seconds: command-line handling, a cache with bad videos skipped (exit status 2), resuming and
# refusing caches, a short training run, bit-for-bit resume, the pixel check and stopping on a signal.
set -u
cd "$(dirname "$0")/../.."
passed=0
failed=0
check() { # check NAME CONDITION-STATUS [DETAIL]
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok      $1"
  else failed=$((failed + 1)); echo "not ok  $1 ${3:-}"; fi
}

data=examples/data
out=build/test-out/e2e
rm -rf "$out"
mkdir -p "$out/data"
for v in Megamind.avi vtest.avi tree.avi cup.mp4; do
  [ -f "$data/$v" ] || { echo "missing sample video $data/$v (run scripts/fetch-sample-data.sh)"; echo "0 passed, 1 failed"; exit 1; }
  ln -sf "$(pwd)/$data/$v" "$out/data/$v"
done
# Bad inputs: a copy truncated inside its headers, an empty file, an audio-only file, a missing file.
# A copy truncated later still decodes a few frames: it is cached (its clip repeats the last frame). And a
# path with spaces.
head -c 4000 "$data/vtest.avi" > "$out/data/truncated.avi"
head -c 200000 "$data/vtest.avi" > "$out/data/partial.avi"
: > "$out/data/empty.mp4"
ffmpeg -v error -f lavfi -i "sine=frequency=440:duration=1" -y "$out/data/audio only.wav"
cp "$data/tree.avi" "$out/data/tree copy.avi"
cat > "$out/list.txt" <<LIST
# the good and the bad
Megamind.avi 0
truncated.avi 1

empty.mp4 2
audio only.wav 3
missing.avi 4
tree copy.avi 5
partial.avi 6
cup.mp4 7
LIST

small_extract=(--data-root "$out/data" --frames 4 --frame-stride 2 --input-size 64 --random-teachers 3
  --image-dim 32 --image-depth 1 --image-heads 2 --video-dim 48 --video-depth 1 --video-heads 2
  --views 2 --shard-size 4 --threads 2)
small_student=(--data-root "$out/data" --dim 32 --depth 1 --heads 2 --decoder-dim 16 --decoder-depth 1
  --decoder-heads 2 --batch 2 --threads 2 --base-lr 0.5 --warmup-steps 1)

# --help and --version
for tool in mvd-extract mvd-train; do
  build/$tool --help | grep -q "Usage: $tool"; check "$tool --help" $?
  build/$tool --version | grep -q "$tool"; check "$tool --version" $?
  build/$tool --no-such-option >/dev/null 2>&1; [ $? -eq 1 ]; check "$tool rejects an unknown option" $?
done

# A bad list line names its line number.
printf 'Megamind.avi 0\nonlyonefield\n' > "$out/badlist.txt"
msg=$(build/mvd-extract --list "$out/badlist.txt" --out "$out/nocache" "${small_extract[@]}" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "badlist.txt:2"; check "bad list line: exit 1 naming file:line" $? "rc=$rc $msg"

# Bad videos are skipped with exit status 2 and recorded in the manifest.
build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" > "$out/extract.log" 2>&1; rc=$?
check "extract with bad videos exits 2" $([ $rc -eq 2 ]; echo $?) "rc=$rc"
for bad in truncated.avi empty.mp4 "audio only.wav" missing.avi; do
  grep -q "\"$bad\"" "$out/cache/manifest.json"; check "manifest records the failure of '$bad'" $?
done
grep -q "missing.avi" "$out/extract.log"; check "the log names the skipped video" $?
clips=$(build/venv/bin/python -c "import json;m=json.load(open('$out/cache/manifest.json'));print(sum(s['clips'] for s in m['shards']))")
[ "$clips" = 8 ]; check "4 decodable videos x 2 views = 8 clips cached" $? "got $clips"
ls "$out/cache"/*.tmp >/dev/null 2>&1; [ $? -ne 0 ]; check "no temporary shard left" $?

# Start-up checks, before any work: a missing data root, an empty list, views that do not fit a shard.
msg=$(build/mvd-extract --list "$out/list.txt" --out "$out/nocache" "${small_extract[@]}" --data-root "$out/nowhere" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "nowhere: not a readable directory" && [ ! -e "$out/nocache" ]
check "a missing data root is fatal and leaves no output" $? "rc=$rc $msg"
printf '# nothing\n' > "$out/emptylist.txt"
msg=$(build/mvd-extract --list "$out/emptylist.txt" --out "$out/nocache" "${small_extract[@]}" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "names no videos"; check "an empty list is fatal" $? "rc=$rc $msg"
msg=$(build/mvd-extract --list "$out/list.txt" --out "$out/nocache" "${small_extract[@]}" --views 8 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "cannot hold the 8 views"; check "views that do not fit a shard are refused" $? "rc=$rc $msg"

# An image teacher with its own patch (as ViT-H/14) sees the crop at the size giving the student's token grid.
printf 'tree copy.avi 0\n' > "$out/list1.txt"
build/mvd-extract --list "$out/list1.txt" --out "$out/cache-p8" "${small_extract[@]}" --image-patch 8 > /dev/null 2>&1; rc=$?
size=$(build/venv/bin/python -c "
import h5py, hdf5plugin
f = h5py.File('$out/cache-p8/shard-00000.h5')
print(f.attrs['image_teacher.input_size'], f['targets/image'].shape[1])" 2>&1)
[ $rc -eq 0 ] && [ "$size" = "32 32" ]; check "image teacher with patch 8: 32 px input, 32 tokens" $? "rc=$rc $size"

# Re-running the same command skips finished shards; other settings are refused.
build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" > "$out/rerun.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "already complete" "$out/rerun.log"; check "re-run skips finished shards" $? "rc=$rc"
msg=$(build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" --seed 9 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "seed"; check "a cache with other settings is refused, naming the field" $? "rc=$rc $msg"
sha_before=$(sha256sum "$out/cache/teachers/image-teacher.safetensors")
msg=$(build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" --image-dim 48 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$(sha256sum "$out/cache/teachers/image-teacher.safetensors")" = "$sha_before" ] &&
  ! ls "$out/cache/teachers/"*.new >/dev/null 2>&1
check "a refused run leaves the cache's teachers untouched" $? "rc=$rc"
# A damaged or deleted shard is found on re-run (by its hash in the manifest) and made again.
cp "$out/cache/shard-00001.h5" "$out/shard1.bak"
truncate -s 5000 "$out/cache/shard-00001.h5"
rm "$out/cache/shard-00002.h5"
build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" > "$out/repair.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "shard-00001.h5: missing, changed" "$out/repair.log" &&
  grep -q "shard-00002.h5: missing, changed" "$out/repair.log" &&
  build/venv/bin/python -c "
import h5py, hdf5plugin, numpy as np, sys
a, b = h5py.File('$out/shard1.bak'), h5py.File('$out/cache/shard-00001.h5')
sys.exit(0 if np.array_equal(a['targets/video'][...], b['targets/video'][...]) else 1)"
check "damaged and deleted shards are made again, with the same targets" $? "rc=$rc $(tail -2 "$out/repair.log")"
# A hand-edited manifest (wrong counts, a wrong video range, a shard that does not exist) is repaired on re-run,
# and the cache then trains.
build/venv/bin/python - "$out/cache/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["shards"][0]["clips"] += 1
m["shards"][1]["last_video_index"] += 3
m["shards"].append(dict(m["shards"][0], file="shard-00099.h5"))
json.dump(m, open(sys.argv[1], "w"))
PY
build/mvd-extract --list "$out/list.txt" --out "$out/cache" "${small_extract[@]}" > "$out/edited.log" 2>&1; rc=$?
clips=$(build/venv/bin/python -c "import json;m=json.load(open('$out/cache/manifest.json'));print(len(m['shards']), sum(s['clips'] for s in m['shards']))")
[ $rc -eq 2 ] && [ "$clips" = "4 8" ] &&
  build/mvd-train --cache "$out/cache" --out "$out/edited-run" "${small_student[@]}" --steps 1 > /dev/null 2>&1
check "an edited manifest is repaired and the cache trains" $? "rc=$rc shards/clips: $clips $(grep -c warning "$out/edited.log") warnings"

# A short training run.
build/mvd-train --cache "$out/cache" --out "$out/run" "${small_student[@]}" --steps 4 > "$out/train.log" 2>&1; rc=$?
check "train exits 0" $rc "$(tail -3 "$out/train.log")"
[ -f "$out/run/checkpoint.safetensors" ] && [ -f "$out/run/checkpoint-state.safetensors" ]; check "checkpoint written" $?
[ "$(wc -l < "$out/run/metrics.jsonl")" -eq 4 ]; check "one metrics record per step" $?

# Gradient accumulation: 2 micro-batches of 1 clip give the update of one batch of 2 (the same clips, masks and
# learning rate; drop path off so the draws cannot differ): equal losses and gradient norms up to fp32 rounding.
build/mvd-train --cache "$out/cache" --out "$out/acc1" "${small_student[@]}" --steps 2 --drop-path 0 > /dev/null 2>&1
build/mvd-train --cache "$out/cache" --out "$out/acc2" "${small_student[@]}" --steps 2 --drop-path 0 --batch 1 --accum 2 \
  > /dev/null 2>&1
build/venv/bin/python - "$out" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(f"{sys.argv[1]}/{r}/metrics.jsonl")] for r in ("acc1", "acc2"))
worst = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a, b) for k in ("loss", "loss_img", "loss_vid", "grad_norm"))
print(f"accumulation: max relative difference {worst:.2e}")
sys.exit(0 if len(a) == len(b) == 2 and worst < 1e-5 else 1)
PY
check "batch 2 == batch 1 x accum 2 (losses, grad norms within 1e-5)" $?

# Resume: 2 steps, stop, resume 2 steps == 4 steps bit for bit.
build/mvd-train --cache "$out/cache" --out "$out/split" "${small_student[@]}" --steps 4 --stop-at 2 > "$out/split1.log" 2>&1; rc=$?
check "--stop-at exits 3 with a checkpoint" $([ $rc -eq 3 ]; echo $?) "rc=$rc"
build/mvd-train --cache "$out/cache" --out "$out/split" "${small_student[@]}" --steps 4 --resume > "$out/split2.log" 2>&1; rc=$?
check "resume exits 0" $rc "$(tail -3 "$out/split2.log")"
cmp -s "$out/run/checkpoint.safetensors" "$out/split/checkpoint.safetensors"; check "2 + resume + 2 steps == 4 steps, bit for bit (student)" $?
cmp -s "$out/run/checkpoint-state.safetensors" "$out/split/checkpoint-state.safetensors"; check "... and optimiser state" $?
cmp -s "$out/run/metrics.jsonl" "$out/split/metrics.jsonl" || diff <(sed 's/"clips_per_s":[^}]*//' "$out/run/metrics.jsonl") <(sed 's/"clips_per_s":[^}]*//' "$out/split/metrics.jsonl") >/dev/null
check "... and the same losses" $?
msg=$(build/mvd-train --cache "$out/cache" --out "$out/split" "${small_student[@]}" --steps 4 --batch 1 --resume 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "saved run has batch 2, this run 1"; check "resume with other settings is refused, naming the setting" $? "rc=$rc $msg"

# A student saved by PyTorch continues training in mvd-train from the same loss: the C checkpoint goes through
# .pth, the reference PyTorch student (strict load), torch.save and back; training from either file starts
# with the same loss.
conv=(--heads 2 --decoder-heads 2 --num-frames 4 --input-size 64)
py=build/venv/bin/python
$py scripts/convert_checkpoint.py mvd-student "$out/run/checkpoint.safetensors" "$out/c.pth" "${conv[@]}" > "$out/conv.log" 2>&1 &&
$py - "$out" >> "$out/conv.log" 2>&1 <<'PY' &&
import sys, torch
sys.path.insert(0, "tests/reference")
import mvd_reference as ref
out = sys.argv[1]
sd = torch.load(f"{out}/c.pth", map_location="cpu")["model"]
m = ref.MVDStudent(num_frames=4, img_size=64, dim=32, depth=1, heads=2, decoder_dim=16, decoder_depth=1,
                   decoder_heads=2, target_dim_img=32, target_dim_vid=48)
m.load_state_dict(sd, strict=True)
torch.save({"model": m.state_dict()}, f"{out}/torch_saved.pth")
PY
$py scripts/convert_checkpoint.py mvd-student "$out/torch_saved.pth" "$out/torch_saved.safetensors" "${conv[@]}" >> "$out/conv.log" 2>&1
check "C checkpoint -> PyTorch (strict) -> torch.save -> safetensors" $? "$(tail -3 "$out/conv.log")"
for init in "$out/run/checkpoint.safetensors" "$out/torch_saved.safetensors"; do
  name=$(basename "$init" .safetensors)
  build/mvd-train --cache "$out/cache" --out "$out/init-$name" "${small_student[@]}" --steps 1 --init "$init" \
    > "$out/init-$name.log" 2>&1
done
l1=$(sed -E 's/.*"loss":([^,]*),.*/\1/' "$out/init-checkpoint/metrics.jsonl" 2>/dev/null)
l2=$(sed -E 's/.*"loss":([^,]*),.*/\1/' "$out/init-torch_saved/metrics.jsonl" 2>/dev/null)
[ -n "$l1" ] && [ "$l1" = "$l2" ]; check "training from the PyTorch-saved student starts from the same loss" $? "C $l1, PyTorch-saved $l2"

# A non-finite loss stops the run and keeps the last good checkpoint: the cached targets are replaced by inf
# after step 2, and the resumed run must stop at step 3 without touching the step-2 checkpoint.
cp -r "$out/cache" "$out/cache-inf"
build/mvd-train --cache "$out/cache-inf" --out "$out/inf" "${small_student[@]}" --steps 4 --stop-at 2 > /dev/null 2>&1
cp "$out/inf/checkpoint.safetensors" "$out/inf-step2.safetensors"
$py - "$out/cache-inf" <<'PY'
import glob, sys, h5py, hdf5plugin, numpy as np
for path in glob.glob(sys.argv[1] + "/shard-*.h5"):
    with h5py.File(path, "r+") as f:
        f["targets/video"][...] = np.inf
PY
msg=$(build/mvd-train --cache "$out/cache-inf" --out "$out/inf" "${small_student[@]}" --steps 4 --resume 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "non-finite loss"; check "a non-finite loss stops the run with a message" $? "rc=$rc $(echo "$msg" | tail -2)"
cmp -s "$out/inf/checkpoint.safetensors" "$out/inf-step2.safetensors"; check "... and keeps the last good checkpoint" $?

# SIGTERM: a checkpoint is written and the run resumes from it.
build/mvd-train --cache "$out/cache" --out "$out/sig" "${small_student[@]}" --steps 400 > "$out/sig.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "^step 1/" "$out/sig.log" 2>/dev/null && break; sleep 0.2; done
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 3 ] && [ -f "$out/sig/checkpoint.safetensors" ]; check "SIGTERM writes a checkpoint and exits 3" $? "rc=$rc"

# The pixel check: a different video under a cached name is caught, naming it.
mkdir -p "$out/swapped"
for v in Megamind.avi "tree copy.avi" partial.avi cup.mp4; do ln -sf "$(pwd)/$out/data/$v" "$out/swapped/$v"; done
ln -sf "$(pwd)/$data/vtest.avi" "$out/swapped/tree copy.avi"
msg=$(build/mvd-train --cache "$out/cache" --out "$out/swap" "${small_student[@]}" --data-root "$out/swapped" --steps 3 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "tree copy.avi"; check "a changed video is refused, naming it" $? "rc=$rc $(echo "$msg" | tail -2)"
[ -f "$out/swap/checkpoint.safetensors" ] && [ "$(wc -l < "$out/swap/metrics.jsonl")" -eq 1 ] &&
  echo "$msg" | grep -q "checkpoint at step 1 is saved"
check "a data error after step 1 saves the step-1 checkpoint" $? "$(echo "$msg" | tail -2)"

# A copy whose timestamps all moved by a whole number of frames (remuxed with an offset) gives the same pixels
# through the probe path, even with --pixel-check off: the fast by-timestamp read, which would find other frames
# at the old timestamps, is always verified by the clip's SHA-256.
mkdir -p "$out/ts-orig" "$out/ts-moved"
ffmpeg -v error -f lavfi -i "testsrc=size=160x120:rate=25" -t 6 -c:v mpeg4 -g 10 -y "$out/ts-orig/synth.mp4"
ffmpeg -v error -i "$out/ts-orig/synth.mp4" -c copy -output_ts_offset 1 -y "$out/ts-moved/synth.mp4"
printf 'synth.mp4 0\n' > "$out/list-ts.txt"
build/mvd-extract --list "$out/list-ts.txt" --out "$out/cache-ts" "${small_extract[@]}" --data-root "$out/ts-orig" \
  --frame-stride 4 > /dev/null 2>&1
for root in ts-orig ts-moved; do
  build/mvd-train --cache "$out/cache-ts" --out "$out/run-$root" "${small_student[@]}" --data-root "$out/$root" \
    --batch 1 --steps 2 --pixel-check off > /dev/null 2>&1
done
[ -f "$out/run-ts-orig/checkpoint.safetensors" ] &&
  cmp -s "$out/run-ts-orig/checkpoint.safetensors" "$out/run-ts-moved/checkpoint.safetensors"
check "moved timestamps: the same pixels and the same training, even with --pixel-check off" $?

# A shard copied over another of the same cache (same settings) is refused by the trainer, naming it.
cp -r "$out/cache" "$out/cache-swapped"
cp "$out/cache-swapped/shard-00000.h5" "$out/cache-swapped/shard-00001.h5"
msg=$(build/mvd-train --cache "$out/cache-swapped" --out "$out/swapped-run" "${small_student[@]}" --steps 1 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "shard-00001.h5: holds"; check "a shard copied over another is refused" $? "rc=$rc $msg"

# A new run never overwrites another's checkpoint; a resumed run must see the same cache.
msg=$(build/mvd-train --cache "$out/cache" --out "$out/run" "${small_student[@]}" --steps 4 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "already holds a run"; check "a new run refuses a folder holding a run" $? "rc=$rc $msg"
printf 'Megamind.avi 0\ncup.mp4 1\n' > "$out/list2.txt"
build/mvd-extract --list "$out/list2.txt" --out "$out/cache2" "${small_extract[@]}" > /dev/null 2>&1
msg=$(build/mvd-train --cache "$out/cache2" --out "$out/run" "${small_student[@]}" --steps 4 --resume 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "saved run has cache="; check "resume on another cache is refused, naming it" $? "rc=$rc $msg"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
