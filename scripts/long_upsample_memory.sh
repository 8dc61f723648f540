#!/usr/bin/env bash
# Peak memory of `adiff upsample` on a long file, against a short one, to show that the streamed
# band extension's memory does not grow with the input's length (issue 25: a 30-minute stereo file
# upsampled x8 in under 2 GB).
#
#   scripts/long_upsample_memory.sh [MINUTES] [ADIFF]
#
# Writes a stereo 6 kHz PCM WAV of MINUTES minutes (default 30) and of 1 minute into a temporary
# folder, upsamples each x8 to 48 kHz, and prints wall time and peak resident memory of each.
set -euo pipefail
minutes="${1:-30}"
adiff="${2:-target/release/adiff}"
[ -x "$adiff" ] || { echo "no adiff binary at $adiff (cargo build --release -p adiff-trainer)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
make_wav() { # minutes path
  python3 - "$1" "$2" <<'PY'
import array, math, random, sys, wave
minutes, path = float(sys.argv[1]), sys.argv[2]
rate = 6000
random.seed(1)
frames = array.array("h")
for i in range(rate * 10):  # 10 s of a stepped tune and a fifth, plus a little noise
    t = i / rate
    f1 = 220 * 2 ** ((int(t * 2) % 8) / 12)
    l = 0.3 * math.sin(2 * math.pi * f1 * t) + 0.05 * (random.random() - 0.5)
    r = 0.3 * math.sin(2 * math.pi * 330 * t) + 0.05 * (random.random() - 0.5)
    frames.append(int(l * 32767)); frames.append(int(r * 32767))
w = wave.open(path, "wb"); w.setnchannels(2); w.setsampwidth(2); w.setframerate(rate)
for _ in range(int(minutes * 6)):
    w.writeframes(frames.tobytes())
w.close()
PY
}
for m in 1 "$minutes"; do
  make_wav "$m" "$tmp/in-$m.wav"
  /usr/bin/time -f "$m min stereo 6 kHz -> 48 kHz: %e s wall, %M KB peak" \
    "$adiff" upsample "$tmp/in-$m.wav" -o "$tmp/out-$m.wav" --factor 8 > /dev/null
  rm -f "$tmp/out-$m.wav"
done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
