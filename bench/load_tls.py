#!/usr/bin/env python3
"""Load benchmark where browsers are: HTTP/2 over TLS, new TLS connections,
and requests with a body; corsgate against nginx, on loopback only.

The companion of bench/load.py, with the same method: each proxy runs alone
pinned to CPU 0 (taskset, optionally capped by a cgroup CPU quota so that
the proxy, not the load generator, is the bottleneck); the load generator
and the backend (an nginx `return 200 "ok"`) share CPU 1. The figure of
merit is the proxy's on-CPU time (/proc/PID/task/*/schedstat) per completed
request; rounds are interleaved and the goals judged on paired ratios
(corsgate / nginx in the same round), median over rounds.

Both proxies serve TLS 1.3 with the same ECDSA P-256 certificate (made by
openssl for the run) and the same CORS policy as bench/load.py.

Workloads:
  T1 preflight over h2 + TLS, one stream at a time per connection (h2load -m 1)
  T2 GET with CORS from an allowed origin over h2 + TLS, -m 1
  T3 the same GET, 10 concurrent streams per connection (-m 10)
  T4 GET on a path with no CORS policy over h2 + TLS, -m 1
  T5 a new TLS connection per request: handshake and one GET (wrk over
     HTTP/1.1 with `Connection: close`)
  B1 POST with a 1 KiB JSON body and CORS, plaintext HTTP/1.1 (wrk)

Usage: python3 bench/load_tls.py [--rounds 5] [--seconds 6] [--cpu-quota 50] [--workloads T1,B1]
Needs: h2load (apt-get install nghttp2-client), wrk, nginx, openssl, taskset,
and the release build `cargo build --release -p corsgate`. Ports are picked
free at run time.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (process, CPU and cgroup helpers, the policy)

PREFLIGHT = {"origin": load.ALLOWED, "access-control-request-method": "PUT",
             "access-control-request-headers": "authorization, content-type"}
WORKLOADS = {
    # name: (tool, method, path, headers, streams per connection)
    "T1": ("h2load", "OPTIONS", "/cors/items", PREFLIGHT, 1),
    "T2": ("h2load", "GET", "/cors/items", {"origin": load.ALLOWED}, 1),
    "T3": ("h2load", "GET", "/cors/items", {"origin": load.ALLOWED}, 10),
    "T4": ("h2load", "GET", "/plain/items", {}, 1),
    "T5": ("wrk-tls-close", "GET", "/cors/items", {"Origin": load.ALLOWED}, 1),
    "B1": ("wrk-body", "POST", "/cors/items", {"Origin": load.ALLOWED,
                                               "Content-Type": "application/json"}, 1),
}
BODY = json.dumps({"items": [{"id": i, "name": f"item-{i:04d}", "tags": ["a", "b"]}
                             for i in range(24)]})[:1024].ljust(1024)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def corsgate_config(plain, tls, backend, cert, key):
    origins = ", ".join(f'"{o}"' for o in load.ORIGINS + ["https://*.tenants.example.com"])
    rules = f"""    rules:
      - match: {{ path: {{ prefix: /cors }} }}
        cors: bench
        forward: {{ upstreams: ["http://127.0.0.1:{backend}"] }}
      - match: {{ path: {{ prefix: /plain }} }}
        forward: {{ upstreams: ["http://127.0.0.1:{backend}"] }}
"""
    return f"""
policies:
  bench:
    allowOrigins: [{origins}]
    allowMethods: [GET, POST, PUT, DELETE]
    allowHeaders: [Authorization, Content-Type, X-Request-ID]
    allowCredentials: true
    maxAge: 600
vservices:
  - name: plain
    listen: "127.0.0.1:{plain}"
{rules}  - name: tls
    listen: "127.0.0.1:{tls}"
    tls: {{ certFile: "{cert}", keyFile: "{key}" }}
{rules}"""


def nginx_config(tmp, plain, tls, cert, key):
    conf = load.nginx_proxy(tmp)
    listen = f"listen 127.0.0.1:{load.NGINX_PORT} backlog=4096;"
    assert listen in conf
    return conf.replace(listen, (
        f"listen 127.0.0.1:{plain} backlog=4096;\n"
        f"    listen 127.0.0.1:{tls} ssl http2 backlog=4096;\n"
        f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
        "    ssl_protocols TLSv1.3;\n    client_body_buffer_size 16k;"))


def run_h2load(port, method, path, headers, streams, seconds, connections):
    cmd = ["taskset", "-c", "1", "h2load", "-c", str(connections), "-m", str(streams),
           "-D", str(seconds), "-H", f":method: {method}"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m:
        raise RuntimeError(out)
    status = re.search(r"status codes: (\d+) 2xx", out)
    done = int(m.group(1))
    return done, done - int(status.group(1)) if status else done


def run_wrk(url, method, headers, body, seconds, connections, tmp):
    script = os.path.join(tmp, "bench.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        for k, v in headers.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
        if body is not None:
            f.write(f"wrk.body = {json.dumps(body)}\n")
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}",
                          f"-d{seconds}s", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, int(errors.group(1)) if errors else 0


def measure(pid, ports, workload, seconds, connections, tmp):
    tool, method, path, headers, streams = WORKLOADS[workload]
    pids = load.process_tree(pid)
    before = load.cpu_ns(pids)
    if tool == "h2load":
        # The connections' handshakes are counted too: 32 of them against
        # tens of thousands of requests.
        done, bad = run_h2load(ports["tls"], method, path, headers, streams, seconds,
                               connections)
        cpu = load.cpu_ns(pids) - before
    elif tool == "wrk-tls-close":
        done, bad = run_wrk(f"https://127.0.0.1:{ports['tls']}{path}", method,
                            dict(headers, Connection="close"), None, seconds, connections, tmp)
        cpu = load.cpu_ns(pids) - before
    else:
        done, bad = run_wrk(f"http://127.0.0.1:{ports['plain']}{path}", method, headers, BODY,
                            seconds, connections, tmp)
        cpu = load.cpu_ns(pids) - before
    return {"cpu_us": cpu / 1000 / max(done, 1), "done": done, "bad": bad}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workloads", default="T1,T2,T3,T4,T5,B1")
    ap.add_argument("--cpu-quota", type=int, default=0, metavar="PERCENT")
    args = ap.parse_args()
    for tool in ["h2load", "wrk", "nginx", "openssl", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install nghttp2-client wrk nginx openssl)")
    tmp = tempfile.mkdtemp(prefix="corsgate-bench-tls-")
    # load.py's configuration builders read these module constants.
    load.BACKEND_PORT, load.NGINX_PORT = free_port(), free_port()
    ports = {"corsgate": {"plain": free_port(), "tls": free_port()},
             "nginx": {"plain": load.NGINX_PORT, "tls": free_port()}}
    env = dict(os.environ, RUST_LOG="warn")
    procs = []

    def spawn(cmd, cpu):
        p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        procs.append(p)
        return p

    try:
        cert, key = certificate(tmp)
        with open(os.path.join(tmp, "backend.conf"), "w") as f:
            f.write(load.nginx_backend(tmp))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(nginx_config(tmp, ports["nginx"]["plain"], ports["nginx"]["tls"], cert, key))
        with open(os.path.join(tmp, "corsgate.yaml"), "w") as f:
            f.write(corsgate_config(ports["corsgate"]["plain"], ports["corsgate"]["tls"],
                                    load.BACKEND_PORT, cert, key))
        spawn(["nginx", "-p", tmp, "-c", os.path.join(tmp, "backend.conf")], 1)
        load.wait_port(load.BACKEND_PORT)
        proxies = {
            "corsgate": spawn([os.path.join(load.TARGET, "corsgate"), "run", "--config",
                               os.path.join(tmp, "corsgate.yaml")], 0),
            "nginx": spawn(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")], 0),
        }
        for name in proxies:
            for port in ports[name].values():
                load.wait_port(port)
        if args.cpu_quota:
            cgroup = load.cpu_quota_group(args.cpu_quota)
            for proc in proxies.values():
                for pid in load.process_tree(proc.pid):
                    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                        f.write(str(pid))
        results = {}
        for r in range(args.rounds):
            for w in args.workloads.split(","):
                for name in ["corsgate", "nginx"]:
                    m = measure(proxies[name].pid, ports[name], w, args.seconds,
                                args.connections, tmp)
                    results.setdefault((w, name), []).append(m)
                    print(f"{w} round {r + 1} {name:9} cpu {m['cpu_us']:7.2f} us/req  "
                          f"{m['done']:8} requests  failed or non-2xx {m['bad']}", flush=True)
        print("\n| workload | corsgate µs/req | nginx µs/req | corsgate / nginx | per round |")
        print("|---|---:|---:|---:|---|")
        for w in args.workloads.split(","):
            ours, theirs = results[(w, "corsgate")], results[(w, "nginx")]
            ratios = [a["cpu_us"] / b["cpu_us"] for a, b in zip(ours, theirs)]
            print(f"| {w} | {statistics.median(m['cpu_us'] for m in ours):.2f} "
                  f"| {statistics.median(m['cpu_us'] for m in theirs):.2f} "
                  f"| {statistics.median(ratios):.3f} | "
                  + " ".join(f"{x:.2f}" for x in ratios) + " |")
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
