#!/usr/bin/env bash
# Runs one takt fuzz target under AFL++ for a bounded time.
#
#   verification/fuzz/fuzz.sh TARGET [SECONDS]
#
# TARGET is fuzz_manifest, fuzz_manifest_plan or fuzz_trace; SECONDS defaults to 300.
# Build the targets first (`cargo afl build --release` in this directory). The seed corpus
# is assembled fresh from the repository on every run, so the manifest seeds are always
# the current config/acc.toml and good.toml. Findings land in out/TARGET/default/crashes
# and .../hangs; replay one with `target/release/TARGET < FILE`.
#
# A second run of the same target resumes from out/TARGET (AFL_AUTORESUME); delete that
# directory to start from the seeds again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${1:?usage: fuzz.sh fuzz_manifest|fuzz_manifest_plan|fuzz_trace [SECONDS]}"
seconds="${2:-300}"

binary="$here/target/release/$target"
if [[ ! -x "$binary" ]]; then
    echo "fuzz.sh: $binary is missing; run \`cargo afl build --release\` in $here first" >&2
    exit 2
fi

seeds="$here/out/seeds-$target"
rm -rf "$seeds"
mkdir -p "$seeds"
case "$target" in
    fuzz_manifest | fuzz_manifest_plan)
        cp "$repo/config/acc.toml" "$seeds/acc.toml"
        cp "$repo/runtime/src/manifest/testdata/good.toml" "$seeds/good.toml"
        ;;
    fuzz_trace)
        cp "$here"/seeds/trace/*.takt "$seeds/"
        ;;
    *)
        echo "fuzz.sh: unknown target \`$target\`; use fuzz_manifest, fuzz_manifest_plan or fuzz_trace" >&2
        exit 2
        ;;
esac

# No CPU frequency governor to check inside a VM; the machine is shared, so do not bind
# to a core another build may be using; a run that is stopped and started again resumes.
export AFL_SKIP_CPUFREQ=1
export AFL_NO_AFFINITY=1
export AFL_AUTORESUME=1
# A manifest seed is text: give the mutator TOML's tokens as a dictionary.
dict=()
if [[ "$target" != fuzz_trace ]]; then
    dict=(-x "$here/toml.dict")
fi

cd "$here"
exec cargo afl fuzz -i "$seeds" -o "$here/out/$target" -V "$seconds" "${dict[@]}" "$binary"
