#!/usr/bin/env bash
# A short run of every fuzz target, from its seeds: proves that the targets
# still build against today's crates and that none of them crashes at once.
# The long runs (10 million executions and more) are in docs/performance.md;
# fuzz/README.md has their commands.
#
# cargo fuzz needs a nightly compiler's unstable flags. The machine's one
# toolchain is stable, so the build sets RUSTC_BOOTSTRAP=1, which lets that
# stable compiler accept them; the fuzz crate is outside the workspace, so
# nothing else is built this way.
#
# RUNS (default 200000) sets the executions per target; compile, which
# builds regexes, runs a tenth of them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

runs="${RUNS:-200000}"
targets=(decide compile head body request)
declare -A max_len=([decide]=512 [compile]=256 [head]=2048 [body]=1024 [request]=2048)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp seeds/"$t"/* "$work/$t"/
  n=$runs
  [ "$t" = compile ] && n=$((runs / 10))
  start=$(date +%s%N)
  if ! cargo fuzz run -s none "$t" "$work/$t" -- \
      -runs="$n" -max_len="${max_len[$t]}" -max_total_time=120 \
      -print_final_stats=1 >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log"
    echo "fuzz target $t failed (its log is above)" >&2
    exit 1
  fi
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  ms=$((($(date +%s%N) - start) / 1000000))
  printf '%-8s %9s executions in %d ms, no crash\n' "$t" "$done_runs" "$ms"
done
