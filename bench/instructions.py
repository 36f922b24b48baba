#!/usr/bin/env python3
"""User-space instructions per request, counted by callgrind: the
deterministic companion of bench/load.py.

load.py measures what matters (CPU time per request against nginx), but on
a VM its rounds spread by 10-15 %, so a change worth 3 % cannot be seen in
it. Instruction counts do not drift with the machine: they show whether a
change removed work from the request path, and where (open the dump with
`callgrind_annotate --inclusive=yes`). They leave out the kernel (about two
thirds of a proxied request's CPU), so they rank changes, not products.

Each server runs alone under `valgrind --tool=callgrind` with collection
off; after a warm-up, collection is switched on for a fixed-duration wrk
run (1 thread, 4 connections), then dumped. corsgate runs with one worker
thread. The backend is the same nginx `return 200` as load.py's.

Usage: python3 bench/instructions.py [--seconds 5] [--workloads W1,W2,W3,W4]
                                     [--keep DIR] [--corsgate BINARY]

Beyond the default W1-W4, --workloads takes B1 (a proxied POST with a 1 KiB
JSON body and CORS: the body path), H1 and H2 (W1 and W2 over HTTP/2
without TLS, driven by h2load: hyper's server and the map path).
Needs: valgrind, wrk, nginx, and h2load for H1 and H2 (apt-get install
valgrind wrk nginx nghttp2-client), and the release builds named in load.py.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the workloads, configs and helpers are shared)


def wrk(port, path, script, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def h2load(port, workload, seconds):
    """Requests h2load completed: HTTP/2 without TLS (prior knowledge, which
    corsgate's listener accepts), one stream at a time per connection."""
    method, path, headers = H2_WORKLOADS[workload]
    cmd = ["h2load", "-c4", "-m1", "-D", str(seconds), "-H", f":method: {method}"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))


# The HTTP/2 paths: W1 and W2 over h2c (hyper's server and the map path).
H2_WORKLOADS = {"H1": load.WORKLOADS["W1"], "H2": load.WORKLOADS["W2"]}


def count(name, cmd, port, workload, tmp, seconds, env):
    """Instructions per request of `cmd` serving `workload`."""
    if workload in H2_WORKLOADS:
        def run(s):
            return h2load(port, workload, s)
    else:
        method, path, headers = load.WORKLOADS[workload]
        script = load.wrk_script(tmp, workload, method, headers)

        def run(s):
            return wrk(port, path, script, s)
    out = os.path.join(tmp, f"{name}-{workload}.callgrind")
    vg = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"] + cmd,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        load.wait_port(port, timeout=60)
        run(2)
        subprocess.run(["callgrind_control", "-i", "on", str(vg.pid)], check=True,
                       capture_output=True)
        requests = run(seconds)
        subprocess.run(["callgrind_control", "-d", str(vg.pid)], check=True, capture_output=True)
    finally:
        os.killpg(vg.pid, signal.SIGTERM)
        vg.wait(timeout=30)
    # The explicit dump is the first numbered part; the final dump at exit
    # covers only what ran after it.
    with open(out + ".1") as f:
        total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
    return total / requests, requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    ap.add_argument("--keep", metavar="DIR", help="copy the callgrind dumps here")
    ap.add_argument("--corsgate", metavar="BINARY",
                    default=os.path.join(load.TARGET, "corsgate"),
                    help="the corsgate binary to count (e.g. another commit's build, for an A/B)")
    args = ap.parse_args()
    for tool in ["valgrind", "callgrind_control", "wrk", "nginx"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install valgrind wrk nginx)")
    tmp = tempfile.mkdtemp(prefix="corsgate-instr-")
    env = dict(os.environ, RUST_LOG="warn")
    backend = None
    try:
        with open(os.path.join(tmp, "backend.conf"), "w") as f:
            f.write(load.nginx_backend(tmp))
        with open(os.path.join(tmp, "corsgate.yaml"), "w") as f:
            f.write(load.corsgate_config())
        backend = subprocess.Popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "backend.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        load.wait_port(load.BACKEND_PORT)
        corsgate = [args.corsgate, "run", "--config",
                    os.path.join(tmp, "corsgate.yaml"), "--no-watch", "--threads", "1"]
        fixed = os.path.join(load.TARGET, "examples", "fixed_response")
        rows = []
        for w in args.workloads.split(","):
            per, n = count("corsgate", corsgate, load.CORSGATE_PORT, w, tmp, args.seconds, env)
            rows.append((w, "corsgate", per, n))
            print(f"{w} corsgate   {per:8.0f} instructions/request ({n} requests)", flush=True)
            if w == "W1":
                for name, extra, port in [("fixed", [], load.FIXED_PORT),
                                          ("fixed-cors", ["preflight"], load.FIXED_CORS_PORT)]:
                    per, n = count(name, [fixed, f"127.0.0.1:{port}"] + extra, port, "F", tmp,
                                   args.seconds, env)
                    rows.append(("W1", name, per, n))
                    print(f"W1 {name:10} {per:8.0f} instructions/request ({n} requests)",
                          flush=True)
        print("\n| workload | server | instructions/request |")
        print("|---|---|---:|")
        for w, name, per, _ in rows:
            print(f"| {w} | {name} | {per:,.0f} |")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for f in os.listdir(tmp):
                if ".callgrind" in f:
                    shutil.copy(os.path.join(tmp, f), args.keep)
    finally:
        if backend:
            os.killpg(backend.pid, signal.SIGTERM)
            backend.wait(timeout=5)
        time.sleep(0.2)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
