#!/usr/bin/env python3
"""Load benchmark: corsgate against nginx (the usual `map $http_origin` +
`add_header ... always` CORS recipe), on loopback only.

Each proxy runs alone, pinned to CPU 0 with taskset; wrk and the backend
(an nginx `return 200`) share CPU 1. On 2 cores the load generator saturates
before a fast proxy does, so the figure of merit is the proxy's CPU time per
request: the on-CPU time of the proxy's threads (from /proc/PID/task/*/schedstat)
over the run, divided by the requests wrk completed. Rounds are interleaved
(A B A B ...) and medians reported.

Workloads:
  W1 preflight answered at the proxy
  W2 proxied GET with CORS from an allowed origin
  W3 proxied GET on a path with no CORS policy
  W4 proxied GET from a refused origin
  F  a fixed-response hyper server with no logic (the floor for W1); "fixed"
     writes one header line, "fixed-cors" the same header lines as corsgate's
     preflight answer, as constants (the floor for writing those bytes)

Usage: python3 bench/load.py [--rounds 3] [--seconds 8] [--connections 32] [--cpu-quota 50]
Needs: wrk, nginx and taskset (apt-get install wrk nginx), and the release
builds: `cargo build --release -p corsgate && cargo build --release -p
corsgate-gateway --example fixed_response`.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "release")


def free_ports(n):
    """N distinct loopback ports free now, picked by the kernel: held open
    together so that none is handed out twice. Fixed ports let a server
    left over from an interrupted run answer in place of the one started,
    which then failed to bind: the figures measured the wrong process."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


BACKEND_PORT, CORSGATE_PORT, NGINX_PORT, FIXED_PORT, FIXED_CORS_PORT = free_ports(5)

ORIGINS = [f"https://app{i}.example.com" for i in range(20)]
ALLOWED = "https://app7.example.com"
REFUSED = "https://evil.example.net"


def corsgate_config():
    origins = ", ".join(f'"{o}"' for o in ORIGINS + ["https://*.tenants.example.com"])
    return f"""
policies:
  bench:
    allowOrigins: [{origins}]
    allowMethods: [GET, POST, PUT, DELETE]
    allowHeaders: [Authorization, Content-Type, X-Request-ID]
    allowCredentials: true
    maxAge: 600
vservices:
  - name: bench
    listen: "127.0.0.1:{CORSGATE_PORT}"
    rules:
      - match: {{ path: {{ prefix: /cors }} }}
        cors: bench
        forward: {{ upstreams: ["http://127.0.0.1:{BACKEND_PORT}"] }}
      - match: {{ path: {{ prefix: /plain }} }}
        forward: {{ upstreams: ["http://127.0.0.1:{BACKEND_PORT}"] }}
"""


def nginx_conf(prefix, port, body):
    return f"""
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx-{port}.pid;
error_log {prefix}/error-{port}.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  {body}
}}
"""


def nginx_backend(prefix):
    return nginx_conf(prefix, BACKEND_PORT, f"""
  server {{
    listen 127.0.0.1:{BACKEND_PORT} reuseport backlog=4096;
    keepalive_requests 1000000;
    location / {{ return 200 "ok"; }}
  }}""")


def nginx_proxy(prefix):
    entries = "\n".join(f'    "{o}" $http_origin;' for o in ORIGINS)
    return nginx_conf(prefix, NGINX_PORT, f"""
  upstream backend {{ server 127.0.0.1:{BACKEND_PORT}; keepalive 64; }}
  map $http_origin $cors_origin {{
    default "";
{entries}
    "~^https://[a-z0-9-]+\\.tenants\\.example\\.com$" $http_origin;
  }}
  server {{
    listen 127.0.0.1:{NGINX_PORT} backlog=4096;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /cors {{
      if ($request_method = OPTIONS) {{
        add_header Access-Control-Allow-Origin $cors_origin always;
        add_header Access-Control-Allow-Credentials true always;
        add_header Access-Control-Allow-Methods "GET, POST, PUT, DELETE" always;
        add_header Access-Control-Allow-Headers "authorization, content-type, x-request-id" always;
        add_header Access-Control-Max-Age 600 always;
        add_header Vary Origin always;
        return 204;
      }}
      add_header Access-Control-Allow-Origin $cors_origin always;
      add_header Access-Control-Allow-Credentials true always;
      add_header Vary Origin always;
      proxy_pass http://backend;
    }}
    location /plain {{ proxy_pass http://backend; }}
  }}""")


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_ns(pids):
    """On-CPU time of the processes' threads, in nanoseconds.

    The scheduler's exact runtime (the first field of each thread's
    /proc/PID/task/TID/schedstat) rather than utime+stime, which are sampled
    at clock ticks and add sampling noise of their own."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    return total


def cpu_quota_group(percent):
    """A cgroup capped at `percent` of one CPU (cgroup v2 `cpu.max`, else
    v1 `cpu.cfs_quota_us`); returns its directory."""
    period = 100_000
    quota = period * percent // 100
    for v2 in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]:
        controllers = os.path.join(v2, "cgroup.controllers")
        if os.path.exists(controllers) and "cpu" in open(controllers).read().split():
            d = os.path.join(v2, "corsgate-bench")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "cpu.max"), "w") as f:
                f.write(f"{quota} {period}")
            return d
    d = "/sys/fs/cgroup/cpu/corsgate-bench"
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
        f.write(str(period))
    with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
        f.write(str(quota))
    return d


def process_tree(pid):
    pids = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    pids.append(int(p))
            except OSError:
                pass
    return pids


WORKLOADS = {
    "W1": ("OPTIONS", "/cors/items", {"Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
                                       "Access-Control-Request-Headers": "authorization, content-type"}),
    "W2": ("GET", "/cors/items", {"Origin": ALLOWED}),
    "W3": ("GET", "/plain/items", {}),
    "W4": ("GET", "/cors/items", {"Origin": REFUSED}),
    "F": ("OPTIONS", "/cors/items", {"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}),
    # Not in the default set: a proxied POST with a 1 KiB JSON body and
    # CORS (the body path; bench/load_tls.py measures it against nginx).
    "B1": ("POST", "/cors/items", {"Origin": ALLOWED, "Content-Type": "application/json"}),
}
# Request bodies, by workload.
BODIES = {"B1": ('{"items": [' + ", ".join(f'{{"id": {i}, "name": "item-{i:04d}"}}'
                                          for i in range(40)) + "]}")[:1024].ljust(1024)}


def wrk_script(tmp, name, method, headers):
    path = os.path.join(tmp, f"{name}.lua")
    with open(path, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        for k, v in headers.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
        if name in BODIES:
            f.write(f"wrk.body = {json.dumps(BODIES[name])}\n")
    return path


def run_wrk(port, path, script, seconds, connections):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", script, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1, "ms": 1000, "s": 1_000_000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def measure(pid, port, workload, tmp, seconds, connections):
    method, path, headers = WORKLOADS[workload]
    script = wrk_script(tmp, workload, method, headers)
    pids = process_tree(pid)
    before = cpu_ns(pids)
    reqs, rps, p99, errors = run_wrk(port, path, script, seconds, connections)
    after = cpu_ns(pids)
    cpu_us = (after - before) / 1000 / max(reqs, 1)
    return {"cpu_us": cpu_us, "rps": rps, "p99_us": p99, "errors": errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workloads", default="W1,W2,W3,W4")
    ap.add_argument("--access-log", action="store_true")
    ap.add_argument("--cpu-quota", type=int, default=0, metavar="PERCENT",
                    help="cap the proxies at PERCENT of their core (cgroup CPU quota) so that "
                         "every proxy, not the load generator, is the bottleneck and CPU per "
                         "request is compared at saturation; needs a writable cgroup cpu controller")
    args = ap.parse_args()
    for tool in ["wrk", "nginx", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install wrk nginx)")
    tmp = tempfile.mkdtemp(prefix="corsgate-bench-")
    procs = []

    # nginx runs with access_log off; corsgate's access log is off too
    # (RUST_LOG=warn) so that both measure proxying, not log formatting.
    # Pass --access-log to measure corsgate with its access log on.
    env = dict(os.environ, RUST_LOG="info" if args.access_log else "warn")

    def spawn(cmd, cpu):
        p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        procs.append(p)
        return p

    try:
        with open(os.path.join(tmp, "backend.conf"), "w") as f:
            f.write(nginx_backend(tmp))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(nginx_proxy(tmp))
        with open(os.path.join(tmp, "corsgate.yaml"), "w") as f:
            f.write(corsgate_config())
        spawn(["nginx", "-p", tmp, "-c", os.path.join(tmp, "backend.conf")], 1)
        wait_port(BACKEND_PORT)
        proxies = {
            "corsgate": (spawn([os.path.join(TARGET, "corsgate"), "run", "--config",
                                os.path.join(tmp, "corsgate.yaml")], 0), CORSGATE_PORT),
            "nginx": (spawn(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")], 0), NGINX_PORT),
            "fixed": (spawn([os.path.join(TARGET, "examples", "fixed_response"),
                             f"127.0.0.1:{FIXED_PORT}"], 0), FIXED_PORT),
            "fixed-cors": (spawn([os.path.join(TARGET, "examples", "fixed_response"),
                                  f"127.0.0.1:{FIXED_CORS_PORT}", "preflight"], 0), FIXED_CORS_PORT),
        }
        for _, port in proxies.values():
            wait_port(port)
        # Whatever answers must be the process just started.
        for name, (p, port) in proxies.items():
            if p.poll() is not None:
                sys.exit(f"{name} exited at start (port {port}); nothing measured")
        if args.cpu_quota:
            cgroup = cpu_quota_group(args.cpu_quota)
            for proc, _ in proxies.values():
                for pid in process_tree(proc.pid):
                    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                        f.write(str(pid))
        results = {}
        # Rounds are the outer loop: every workload and server is measured
        # once per round, close together in time, so that per-round pairs
        # (corsgate / nginx, and W2 - W3) see the same machine state; the
        # VM drifts over minutes.
        for r in range(args.rounds):
            for w in args.workloads.split(","):
                order = ["corsgate", "nginx"] + (["fixed", "fixed-cors"] if w == "W1" else [])
                for name in order:
                    proc, port = proxies[name]
                    wl = "F" if name.startswith("fixed") else w
                    m = measure(proc.pid, port, wl, tmp, args.seconds, args.connections)
                    results.setdefault((w, name), []).append(m)
                    print(f"{w} round {r + 1} {name:9} cpu {m['cpu_us']:6.2f} us/req  "
                          f"{m['rps']:9.0f} req/s  p99 {m['p99_us']:7.0f} us  non-2xx {m['errors']}",
                          flush=True)
        print("\nMedians over rounds:")
        print("| workload | proxy | CPU µs/req | req/s | p99 µs |")
        print("|---|---|---:|---:|---:|")
        for (w, name), ms in results.items():
            med = lambda k: statistics.median(m[k] for m in ms)
            print(f"| {w} | {name} | {med('cpu_us'):.2f} | {med('rps'):.0f} | {med('p99_us'):.0f} |")
        # The machine drifts between rounds (every server slows down
        # together); ratios within a round are steadier than medians of
        # absolute numbers, so the goals are judged on these.
        print("\nPaired ratios (corsgate / peer, same round), median and per round:")
        for w in args.workloads.split(","):
            ours = results.get((w, "corsgate"), [])
            for peer in ["nginx", "fixed", "fixed-cors"]:
                theirs = results.get((w, peer))
                if not theirs:
                    continue
                ratios = [a["cpu_us"] / b["cpu_us"] for a, b in zip(ours, theirs)]
                print(f"{w} corsgate/{peer:10} {statistics.median(ratios):.3f}   "
                      + " ".join(f"{r:.3f}" for r in ratios))
        if "W2" in args.workloads.split(",") and "W3" in args.workloads.split(","):
            diffs = [a["cpu_us"] - b["cpu_us"]
                     for a, b in zip(results[("W2", "corsgate")], results[("W3", "corsgate")])]
            print(f"W2 - W3 corsgate (µs/req) median {statistics.median(diffs):+.2f}   "
                  + " ".join(f"{d:+.2f}" for d in diffs))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
        if args.cpu_quota:
            time.sleep(0.5)
            for d in ["/sys/fs/cgroup/corsgate-bench", "/sys/fs/cgroup/unified/corsgate-bench",
                      "/sys/fs/cgroup/cpu/corsgate-bench"]:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
