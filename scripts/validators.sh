#!/usr/bin/env bash
# Builds the public plugin validators where their sources are present (outside the workspace) and
# runs them on the bundles from `cargo xtask bundle adiff-plugin`. Prints each validator's summary.
#
#   scripts/validators.sh [--release]
#
# Environment:
#   ADIFF_VALIDATORS_DIR  where the validator sources live (default: ../validators next to the repo)
#                         clap-validator: git clone https://github.com/free-audio/clap-validator
#                         VST3 SDK:       git clone --recursive https://github.com/steinbergmedia/vst3sdk
#   FUZZ_DURATION         clap-validator fuzz duration (default: 60s)
#   VST3_VALIDATOR        path to an already built VST3 SDK `validator` binary (skips the SDK build)
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VALIDATORS="${ADIFF_VALIDATORS_DIR:-$(dirname "$ROOT")/validators}"
FUZZ_DURATION="${FUZZ_DURATION:-60s}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
status=0

cd "$ROOT" || exit 1
cargo xtask bundle adiff-plugin "$@" || exit 1
CLAP="$TARGET/bundled/adiff-plugin.clap"
VST3="$TARGET/bundled/adiff-plugin.vst3"

strip_colour() { sed 's/\x1b\[[0-9;]*m//g'; }

# --- clap-validator (free-audio, MIT) ---------------------------------------------------------
CV_SRC="$VALIDATORS/clap-validator"
CV_BIN="$CV_SRC/target/release/clap-validator"
if [ -d "$CV_SRC" ]; then
    if [ ! -x "$CV_BIN" ]; then
        # Its workspace lists two test plugins that do not build standalone: drop them.
        sed -i -e '/"tests\/clack-synth",/d' -e '/"tests\/clack-effect",/d' "$CV_SRC/Cargo.toml"
        (cd "$CV_SRC" && cargo build --release) || { echo "clap-validator: build failed"; status=1; }
    fi
    if [ -x "$CV_BIN" ]; then
        echo "== clap-validator validate $CLAP"
        "$CV_BIN" validate --hide-output "$CLAP" 2>&1 | strip_colour | tee /tmp/adiff-clap-validate.log | grep -E "tests run|FAILED" || true
        grep -qE "tests run, [0-9]+ passed, 0 failed" /tmp/adiff-clap-validate.log || status=1
        echo "== clap-validator fuzz --duration $FUZZ_DURATION $CLAP"
        "$CV_BIN" fuzz --duration "$FUZZ_DURATION" "$CLAP" 2>&1 | strip_colour | tee /tmp/adiff-clap-fuzz.log | tail -n 3
        grep -qiE "fail|error|panic|crash" /tmp/adiff-clap-fuzz.log && status=1
    fi
else
    echo "clap-validator: no source at $CV_SRC (skipped)"
fi

# --- VST3 SDK validator (Steinberg, MIT) -----------------------------------------------------
# scripts/vst3_validator.sh builds it with g++ (no cmake needed) from $VALIDATORS/vst3sdk or
# $VALIDATORS/vst3/vst3sdk (or uses VST3_VALIDATOR), runs it on the bundle and prints the summary.
"$ROOT/scripts/vst3_validator.sh" "$VST3" || status=1
exit $status
