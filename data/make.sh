#!/usr/bin/env bash
# Builds adiff's own audio dataset, deterministically, from the shared recipe
# (make_dataset.sh + datagen.py: MIDI rendered through FluidR3 GM, public-domain folk tunes,
# synthesized speech, optionally CC0 Sonic Pi recordings). Same arguments -> byte-identical files.
#
#   data/make.sh [--preset tiny|small|full] [--out DIR] [--recipe DIR] [--no-install] [--jobs N]
#
# Presets (all 48 kHz mono, seed 0):
#   tiny   3 min asked, 2 s clips, no folk tunes (fast checks)
#   small  3 min, 10 s clips                      (~23 MB; the default; a first training run)
#   full   60 min, 10 s clips, + CC0 real recordings (--real)  (~400 MB; the shipped upsampler)
# Output: DIR/{train,test}/{music,speech,real}/*.wav, DIR/manifest.tsv, DIR/sources/,
#         DIR/LICENSES.md and DIR/SHA256SUMS (checked against a previous build of the same preset
#         in DIR when present, to prove determinism).
# Split by source, never by clip: source i of each generator is test iff i % 10 == 1.
# Train on it with:  adiff train --data DIR/train --val-data DIR/test --model CONFIG.json --out RUN
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PRESET=small OUT="" RECIPE="${ADIFF_DATA_RECIPE:-}" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=$2; shift ;;
    --out) OUT=$2; shift ;;
    --recipe) RECIPE=$2; shift ;;
    --no-install) EXTRA+=(--no-install) ;;
    --jobs) EXTRA+=(--jobs "$2"); shift ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac; shift
done
case "$PRESET" in
  tiny)  ARGS=(--minutes 3 --clip-seconds 2 --no-folk) ;;
  small) ARGS=(--minutes 3 --clip-seconds 10) ;;
  full)  ARGS=(--minutes 60 --clip-seconds 10 --real) ;;
  *) echo "unknown preset $PRESET (tiny, small, full)" >&2; exit 2 ;;
esac
OUT="${OUT:-$HERE/audio-$PRESET}"

# The recipe lives outside the repository (shared, read-only); find it.
if [ -z "$RECIPE" ]; then
  for c in "$HERE/../../shared/data" "$HERE/../shared/data" /work/shared/data; do
    [ -f "$c/make_dataset.sh" ] && RECIPE="$c" && break
  done
fi
if [ -z "$RECIPE" ] || [ ! -f "$RECIPE/make_dataset.sh" ] || [ ! -f "$RECIPE/datagen.py" ]; then
  echo "cannot find the dataset recipe (make_dataset.sh + datagen.py); pass --recipe DIR or set ADIFF_DATA_RECIPE" >&2
  exit 1
fi

# Pinned: rate, channels, seed and the music share are part of the dataset's identity.
PREV=""
[ -f "$OUT/SHA256SUMS" ] && PREV="$(cat "$OUT/SHA256SUMS")"
rm -rf "$OUT/train" "$OUT/test" "$OUT/sources" "$OUT/manifest.tsv"
bash "$RECIPE/make_dataset.sh" --out "$OUT" --sr 48000 --channels 1 --seed 0 --music-frac 0.6 "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
cp "$HERE/LICENSES.md" "$OUT/LICENSES.md"

# Checksums of every WAV, in a stable order; a rebuild must reproduce them.
( cd "$OUT" && find train test -name '*.wav' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum ) > "$OUT/SHA256SUMS"
if [ -n "$PREV" ]; then
  if [ "$PREV" = "$(cat "$OUT/SHA256SUMS")" ]; then
    echo "rebuild is byte-identical to the previous build ($(wc -l < "$OUT/SHA256SUMS") files)" >&2
  else
    echo "warning: rebuild differs from the previous build of $OUT (different tool versions?)" >&2
  fi
fi
ntrain=$(find "$OUT/train" -name '*.wav' | wc -l); ntest=$(find "$OUT/test" -name '*.wav' 2>/dev/null | wc -l)
[ "$ntest" -gt 0 ] || echo "warning: no test clips (every generator produced a single source); use a larger preset" >&2
echo "dataset $PRESET in $OUT: $ntrain training clips, $ntest test clips (split by source: i % 10 == 1 is test)" >&2
