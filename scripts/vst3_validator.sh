#!/usr/bin/env bash
# Builds Steinberg's VST3 SDK `validator` (MIT) from an SDK checkout outside the workspace and runs
# it on the .vst3 bundle from `cargo xtask bundle adiff-plugin`. Prints the validator's summary line
# and exits non-zero on any failed test. Called by scripts/validators.sh; usable on its own.
#
#   scripts/vst3_validator.sh [BUNDLE.vst3]      (default: $CARGO_TARGET_DIR/bundled/adiff-plugin.vst3)
#
# Environment:
#   VST3_SDK          SDK checkout with its submodules base, pluginterfaces, public.sdk (default: the
#                     first of $ADIFF_VALIDATORS_DIR/vst3sdk, $ADIFF_VALIDATORS_DIR/vst3/vst3sdk that
#                     exists; ADIFF_VALIDATORS_DIR defaults to ../validators next to the repository).
#                     git clone --recursive https://github.com/steinbergmedia/vst3sdk
#   VST3_VALIDATOR    an already built `validator` binary (skips the build)
#   VST3_BUILD        where the build goes (default: $VST3_SDK/../vst3-validator-build)
#   VST3_EXTENSIVE=1  also run the extensive suite (`-e`)
# The build needs only g++ (cmake is not required): the validator's sources are compiled directly,
# as listed by public.sdk/samples/vst-hosting/validator/CMakeLists.txt and sdk_common/sdk_hosting.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VALIDATORS="${ADIFF_VALIDATORS_DIR:-$(dirname "$ROOT")/validators}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BUNDLE="${1:-$TARGET/bundled/adiff-plugin.vst3}"

if [ -z "${VST3_SDK:-}" ]; then
    for d in "$VALIDATORS/vst3sdk" "$VALIDATORS/vst3/vst3sdk"; do
        [ -d "$d/public.sdk/samples/vst-hosting/validator" ] && { VST3_SDK="$d"; break; }
    done
fi

# build_validator SDK OUT: compiles the validator with g++ into OUT/validator (objects cached).
build_validator() {
    local sdk="$1" out="$2" obj="$2/obj" src o failed=0 objs=()
    local v="public.sdk/samples/vst-hosting/validator/source"
    local t="public.sdk/source/vst/testsuite"
    local h="public.sdk/source/vst/hosting"
    local sources=(
        base/source/{baseiids,fbuffer,fdebug,fdynlib,fobject,fstreamer,fstring,timer,updatehandler}.cpp
        base/thread/source/{fcondition,flock}.cpp
        pluginterfaces/base/{conststringtable,coreiids,funknown,ustring}.cpp
        public.sdk/source/common/{commoniids,commonstringconvert,memorystream,openurl,readfile}.cpp
        public.sdk/source/common/{systemclipboard_linux,threadchecker_linux}.cpp
        public.sdk/source/vst/{vstpresetfile,vstinitiids}.cpp
        public.sdk/source/main/moduleinit.cpp
        public.sdk/source/vst/moduleinfo/moduleinfoparser.cpp
        $h/{connectionproxy,eventlist,hostclasses,module,module_linux,parameterchanges}.cpp
        $h/{pluginterfacesupport,plugprovider,processdata}.cpp
        $h/test/{connectionproxytest,eventlisttest,hostclassestest,parameterchangestest}.cpp
        $h/test/{pluginterfacesupporttest,processdatatest}.cpp
        public.sdk/source/vst/utility/{stringconvert,testing}.cpp
        $t/bus/{busactivation,busconsistency,businvalidindex,checkaudiobusarrangement}.cpp
        $t/bus/{scanbusses,sidechainarrangement}.cpp
        $t/general/{editorclasses,midilearn,midimapping,plugcompat,scanparameters}.cpp
        $t/general/{suspendresume,terminit}.cpp
        $t/noteexpression/{keyswitch,noteexpression}.cpp
        $t/processing/{automation,process,processcontextrequirements,processformat}.cpp
        $t/processing/{processinputoverwriting,processtail,processthreaded,silenceflags}.cpp
        $t/processing/{silenceprocessing,speakerarrangement,variableblocksize}.cpp
        $t/state/{bypasspersistence,invalidstatetransition,repeatidenticalstatetransition}.cpp
        $t/state/validstatetransition.cpp
        $t/{testbase,vsttestsuite}.cpp
        $t/unit/{checkunitstructure,scanprograms,scanunits}.cpp
        $v/{main,usediids,validator}.cpp
    )
    mkdir -p "$obj" || return 1
    for src in "${sources[@]}"; do
        # Files an older or newer SDK does not have are skipped; the link says if one was needed.
        [ -f "$sdk/$src" ] || { echo "VST3 validator: $src not in this SDK (skipped)"; continue; }
        o="$obj/$(echo "$src" | tr '/' '_').o"
        objs+=("$o")
        [ "$o" -nt "$sdk/$src" ] && continue
        g++ -std=c++17 -O1 -DRELEASE=1 -DNDEBUG -w -I"$sdk" -c "$sdk/$src" -o "$o" || failed=1
    done
    [ "$failed" = 0 ] && g++ -o "$out/validator" "${objs[@]}" -ldl -lpthread
}

if [ -z "${VST3_VALIDATOR:-}" ]; then
    if [ -z "${VST3_SDK:-}" ]; then
        echo "VST3 validator: no SDK source (set VST3_SDK or clone vst3sdk into $VALIDATORS; skipped)"
        exit 0
    fi
    for sub in base pluginterfaces public.sdk; do
        [ -n "$(ls -A "$VST3_SDK/$sub" 2>/dev/null)" ] || {
            echo "VST3 validator: submodule $sub missing in $VST3_SDK (git submodule update --init)"
            exit 1
        }
    done
    BUILD="${VST3_BUILD:-$(dirname "$VST3_SDK")/vst3-validator-build}"
    VST3_VALIDATOR="$BUILD/validator"
    if [ ! -x "$VST3_VALIDATOR" ]; then
        echo "VST3 validator: building from $VST3_SDK into $BUILD (g++)"
        build_validator "$VST3_SDK" "$BUILD" || { echo "VST3 validator: build failed"; exit 1; }
    fi
fi

[ -d "$BUNDLE" ] || { echo "VST3 validator: no bundle at $BUNDLE (run cargo xtask bundle adiff-plugin)"; exit 1; }
status=0
run() {
    local log="$1"
    shift
    echo "== VST3 validator $* $BUNDLE"
    "$VST3_VALIDATOR" "$@" "$BUNDLE" >"$log" 2>&1
    local rc=$?
    grep -E "^Result:" "$log" | tail -n 1
    [ $rc = 0 ] && grep -qE "^Result: [0-9]+ tests passed, 0 tests failed" "$log" || {
        grep -E "\[Failed\]|ERROR" "$log" | head -n 20
        echo "VST3 validator: failures (exit $rc), full log in $log"
        status=1
    }
}
run "${TMPDIR:-/tmp}/adiff-vst3-validate.log"
[ "${VST3_EXTENSIVE:-0}" = 1 ] && run "${TMPDIR:-/tmp}/adiff-vst3-validate-extensive.log" -e
exit $status
