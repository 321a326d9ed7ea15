#!/usr/bin/env bash
# The OTA demo on the running ACC deployment (config/acc.toml), end to end:
#   keygen -> sign planning v2 (speed-scheduled time gap) -> stage -> hot swap -> automatic commit,
#   then sign planning v3 (overruns its budget) -> stage -> hot swap -> automatic rollback, marked bad;
#   finally the trace report over every process's trace file (0 missed releases across both switches).
# Needs root (SCHED_FIFO). Everything lands in $OUT (default: a fresh temporary directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d /tmp/takt-ota-demo.XXXXXX)}
mkdir -p "$OUT"
cargo build --release -q -p takt-cli -p takt-acc --bins
T=target/release/takt
CTL="$OUT/ctl.sock"
step() { printf '\n== %s\n' "$*"; }

step "keygen: the integrator's signing key"
$T ota keygen --out "$OUT/dev.key"
KEY=$(cat "$OUT/dev.key.pub")
# The deployment trusts this key: a copy of the demo manifest with it in [ota] trusted_keys.
# The copy lives in $OUT, so its app executables (relative to the manifest's directory in
# config/acc.toml) are made absolute.
sed -e "s|^\[ota\]|[ota]\ntrusted_keys = [\"$KEY\"]|" \
  -e "s|^executable = \"\.\./|executable = \"$PWD/|" config/acc.toml > "$OUT/acc.toml"

step "sign: planning v2 (speed-scheduled time gap) and v3 (overruns its 200us budget)"
$T ota sign --key "$OUT/dev.key" --app planning --version 2 --label 2.0-speed-gap \
  --executable target/release/acc-planning-v2 --manifest "$OUT/acc.toml" --out "$OUT/planning-2.takt"
$T ota sign --key "$OUT/dev.key" --app planning --version 3 --label 3.0-overrun \
  --executable target/release/acc-planning-v3 --manifest "$OUT/acc.toml" --out "$OUT/planning-3.takt"

step "run: the ACC deployment for 16 s, supervised, traced, taking updates into $OUT/state"
$T run "$OUT/acc.toml" --duration 16s --ota-dir "$OUT/state" --control "$CTL" --trace "$OUT/t.takt" \
  >"$OUT/run.out" 2>"$OUT/run.err" &
RUN=$!
for _ in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
sleep 1

wait_state() { # app state timeout_s
  for _ in $(seq $(( $3 * 10 ))); do
    if $T ota status --json --control "$CTL" | python3 -c "import json,sys; r=json.load(sys.stdin); sys.exit(0 if any(a['app']=='$1' and a['state']=='$2' for a in r['apps']) else 1)"; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1 to be $2" >&2; return 1
}

step "stage + hot swap v2; probation (1 s) commits it"
$T ota stage "$OUT/planning-2.takt" --control "$CTL"
$T ota activate planning --hot-swap --control "$CTL"
wait_state planning committed 10
$T ota status --json --control "$CTL" | python3 -c "import json,sys; a=[a for a in json.load(sys.stdin)['apps'] if a['app']=='planning'][0]; print(json.dumps({k: a[k] for k in ('app','state','running_version','installed_version','installed_slot','bad_versions','last_result')}, indent=1))"

step "stage + hot swap v3; it overruns on probation and is rolled back automatically"
$T ota stage "$OUT/planning-3.takt" --control "$CTL"
$T ota activate planning --hot-swap --control "$CTL"
wait_state planning rolled-back 10
$T ota status --control "$CTL"
step "v3 is marked bad: staging it again is refused"
if $T ota stage "$OUT/planning-3.takt" --control "$CTL"; then echo "UNEXPECTED: v3 was staged again" >&2; exit 1; fi

wait $RUN
step "the run"
cat "$OUT/run.err" | grep -E "OTA|trace" || true
grep -E "^app:|overruns:|digest" "$OUT/run.out"
step "trace: every planned release exactly once across all processes"
$T trace report "$OUT"/t.takt.* | grep -E -A12 "^releases" 
echo "files in $OUT"
