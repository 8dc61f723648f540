#!/usr/bin/env bash
# Trains the shipped generator (models/generator: a small unconditional AudioDiffusionModel) on the
# music of the training split, renders 32 clips and 8 spectrograms from the exported EMA weights,
# and writes the Fréchet log-mel table into docs/models.md (issue 11).
#
#   scripts/train_generator.sh [DATA_DIR] [RUN_DIR]
#       DATA_DIR  default /work/data-cache/full (data/make.sh --preset full; outside the repo)
#       RUN_DIR   default /work/runs/generator; an existing run is resumed from its newest checkpoint
#
# Config: trainer/src/train/small_generator.json: the network samples at 12 kHz (mono, patch 16,
# 64 channels, 12 M parameters), Karras-preconditioned (KDiffusion, sigma_data 0.1, about the
# music's RMS; sigma ~ log-normal(-2.8, 1.4); ADPM2 from sigma 1 to 1e-4); the folder's
# band-extension stage (a copy of models/upsampler) brings its output to 48 kHz. About 0.9 s per
# update of 12 x 32768 samples (2.7 s of audio each) on two cores; 5,000 updates take 75 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-/work/data-cache/full}"
RUN="${2:-/work/runs/generator}"
cd "$ROOT"
[ -f "$DATA/manifest.tsv" ] || bash data/make.sh --preset full --out "$DATA"
cargo build --release -p adiff-trainer
ADIFF=target/release/adiff
if [ -f "$RUN/run.json" ]; then
  $ADIFF train --resume "$RUN" --no-progress
else
  $ADIFF train --data "$DATA/train/music" --val-data "$DATA/test/music" \
    --model trainer/src/train/small_generator.json --out "$RUN" --window 32768 --steps 5000 \
    --batch-size 12 --lr 3e-4 --warmup 150 --ema-decay 0.999 --val-every 500 --val-windows 12 \
    --sample-every 0 --checkpoint-every 250 --keep-checkpoints 3 --no-progress
fi
# f16 weights: the f32 folder (12 M parameters, 48 MB) would not fit the 40 MB budget.
rm -rf models/generator
$ADIFF convert "$RUN/model/model.safetensors" --config "$RUN/model/config.json" \
  -o models/generator --store f16 --band-extension models/upsampler --band-extension-factor 4
mkdir -p models/generator/samples
CLIPS="$RUN/clips" && rm -rf "$CLIPS" && mkdir -p "$CLIPS"
for i in $(seq 0 31); do
  png=()
  [ "$i" -lt 8 ] && png=(--spectrogram "models/generator/samples/sample-$i.png")
  $ADIFF generate --model models/generator --seconds 2.7307 --seed "$i" \
    -o "$CLIPS/clip-$(printf %02d "$i").wav" "${png[@]}" > /dev/null
done
$ADIFF eval --data "$DATA" --frechet "$CLIPS" --out docs/models.md
