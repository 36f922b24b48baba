#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, integration, doc
# tests, and the end-to-end suite in a real Chromium (installed here when
# missing, as are protoc and etcd). This is the README's test command;
# .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

echo "== build and fleet prerequisites"
# The etcd client's gRPC code is generated at build time by protoc, and the
# fleet tests start real etcd members: install what is missing on a fresh
# Debian.
prereq=()
command -v protoc >/dev/null || prereq+=(protobuf-compiler)
command -v etcd >/dev/null || prereq+=(etcd-server)
# A gateway test reads its listeners' accept-queue depth with ss.
command -v ss >/dev/null || prereq+=(iproute2)
if [ "${#prereq[@]}" -gt 0 ]; then
  echo "installing ${prereq[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${prereq[@]}" >/dev/null
fi

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked

echo "== fuzz targets: build and a short run of each from its seeds"
bash scripts/fuzz-smoke.sh

echo "== browser suite: prerequisites"
# The browser suite drives Debian's Chromium with playwright-core from npm
# (never a downloaded browser). Install what is missing on a fresh Debian.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The console suite edits the store's SQLite file to tamper with the audit log.
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(cd browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== browser suite (Chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
# cargo test above built target/debug/corsgate; this is a no-op then.
cargo build --locked -p corsgate
node browser/run.mjs

echo "== console suite (screenshots in target/console-screenshots/)"
node browser/console.mjs
