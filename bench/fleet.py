#!/usr/bin/env python3
"""Fleet propagation benchmark: how long after an apply is acknowledged
every gateway of a fleet serves the new version, on loopback only.

Starts an etcd cluster (--members, default 3) and --gateways corsgate
processes on the etcd store, then makes --applies changes through the
first gateway's admin API, one after another. For each change:

  t_ack    the admin API's 201 reaches the client;
  t_node   each other gateway logs "configuration applied from the etcd
           store" for that version, after its atomic swap (the log line's
           own timestamp, same clock);
  checked  one real request to every gateway's data plane returns the new
           version's body (a correctness check, not part of the time).

Propagation is max(t_node) - t_ack, clamped at 0 (a gateway may swap
before the acknowledgement reaches the client). The gateway that took the
apply swaps before it answers, so it is not counted. Reported: p50, p99
and max, etcd's CPU time (utime + stime of the members, from /proc) per
apply, and the gRPC bytes etcd sent to clients per apply (its
etcd_network_client_grpc_sent_bytes_total counter: watch events, lease
keep-alives, reads).

Usage: python3 bench/fleet.py [--gateways 20] [--applies 60] [--members 3]
       [--bin target/release/corsgate] [--json]
Needs: etcd (apt-get install etcd-server) and a release build
(`cargo build --release -p corsgate`).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "https://app.example"
# SHA-256 of "editor-secret".
EDITOR_HASH = "2ab2be1f6eca11ec9aeb4cda517586091446724556c17637fadb27d0cee08173"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(n, admin_port, endpoints):
    eps = ", ".join(f'"{e}"' for e in endpoints)
    return f"""policies:
  p:
    allowOrigins: ["{ORIGIN}"]
    allowMethods: [GET]
    exposeHeaders: [x-v{n}]
vservices:
  - name: api
    listen: "127.0.0.1:0"
    cors: p
    rules:
      - direct: {{ status: 200, body: v{n} }}
admin:
  listen: "127.0.0.1:{admin_port}"
  tokens:
    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}
  store:
    etcd: {{ endpoints: [{eps}] }}
"""


def http(port, method, path, body=None, token=True):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", "Bearer editor-secret")
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def served_body(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET /x HTTP/1.1\r\nHost: api\r\nOrigin: {ORIGIN}\r\nConnection: close\r\n\r\n".encode())
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out.split(b"\r\n\r\n", 1)[-1].decode().strip()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grpc_sent(client_url):
    try:
        with urllib.request.urlopen(client_url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("etcd_network_client_grpc_sent_bytes_total")
    )


def wait(what, check, seconds=30):
    deadline = time.time() + seconds
    while not check():
        if time.time() > deadline:
            sys.exit(f"not within {seconds} s: {what}")
        time.sleep(0.02)


APPLIED = re.compile(r"^(\S+)\s+INFO corsgate::fleet_sync: configuration applied from the etcd store version=(\d+)")
LISTENING = re.compile(r"listening vservice=api addr=127\.0\.0\.1:(\d+)")


class Log:
    """A gateway's log, read incrementally."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.applied = {}
        self.port = None

    def scan(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            m = APPLIED.match(line)
            if m:
                t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
                self.applied[int(m.group(2))] = t.timestamp()
            m = LISTENING.search(line)
            if m:
                self.port = int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateways", type=int, default=3)
    ap.add_argument("--applies", type=int, default=60)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "corsgate"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not shutil.which("etcd"):
        sys.exit("etcd not found: apt-get install etcd-server")
    tmp = tempfile.mkdtemp(prefix="corsgate-fleet-bench-")
    procs = []
    try:
        members = [(f"m{i}", free_port(), free_port()) for i in range(args.members)]
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, _, p in members)
        endpoints = [f"http://127.0.0.1:{c}" for _, c, _ in members]
        etcd = []
        for name, client, peer in members:
            etcd.append(subprocess.Popen(
                ["etcd", "--name", name, "--data-dir", os.path.join(tmp, name),
                 "--listen-client-urls", f"http://127.0.0.1:{client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", cluster, "--initial-cluster-state", "new",
                 "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"), "w")))
        procs += etcd
        wait("etcd healthy", lambda: all('"health":"true"' in http(int(e.rsplit(":", 1)[1]), "GET", "/health", token=False)[1] for e in endpoints))

        gateways = []
        for i in range(args.gateways):
            admin_port = free_port()
            cfg = os.path.join(tmp, f"gw{i}.yaml")
            with open(cfg, "w") as f:
                f.write(config(1, admin_port, endpoints))
            log = os.path.join(tmp, f"gw{i}.log")
            p = subprocess.Popen(
                [args.bin, "run", "--no-watch", "--threads", "1", "--node", f"gw{i}",
                 "--config", cfg, "--data-dir", os.path.join(tmp, f"data{i}")],
                env={**os.environ, "RUST_LOG": "info,corsgate::access=off"},
                stdout=subprocess.DEVNULL, stderr=open(log, "w"))
            procs.append(p)
            gateways.append((p, admin_port, Log(log)))
            # One at a time: the first bootstraps the store from its file.
            wait(f"gateway {i} ready", lambda: http(admin_port, "GET", "/ready", token=False)[0] == 200)
        for _, _, log in gateways:
            wait("data-plane port in the log", lambda: (log.scan(), log.port)[1] is not None)
        editor = gateways[0][1]
        wait("every node registered", lambda: len(json.loads(http(editor, "GET", "/fleet")[1]).get("nodes", [])) == args.gateways)

        cpu0 = sum(cpu_seconds(p.pid) for p in etcd)
        sent0 = sum(grpc_sent(e) for e in endpoints)
        active = 1
        times = []
        start = time.time()
        for n in range(2, args.applies + 2):
            status, body = http(editor, "POST", "/api/v1/versions",
                                {"base": active, "comment": f"v{n}", "content": config(n, editor, endpoints)})
            t_ack = time.time()
            if status != 201:
                sys.exit(f"apply {n}: {status} {body}")
            active = json.loads(body)["id"]
            followers = [log for _, _, log in gateways[1:]]

            def all_applied():
                for log in followers:
                    if active not in log.applied:
                        log.scan()
                return all(active in log.applied for log in followers)

            wait(f"every gateway applied version {active}", all_applied)
            last = max((log.applied[active] for log in followers), default=t_ack)
            times.append(max(0.0, last - t_ack))
            for _, _, log in gateways:
                got = served_body(log.port)
                if got != f"v{n}":
                    sys.exit(f"port {log.port} serves {got!r} after version {active} (v{n}) was applied")
        elapsed = time.time() - start
        cpu = sum(cpu_seconds(p.pid) for p in etcd) - cpu0
        sent = sum(grpc_sent(e) for e in endpoints) - sent0

        times.sort()
        p = lambda q: times[min(len(times) - 1, int(round(q * (len(times) - 1))))]
        result = {
            "gateways": args.gateways,
            "etcd_members": args.members,
            "applies": len(times),
            "p50_ms": round(p(0.50) * 1000, 1),
            "p99_ms": round(p(0.99) * 1000, 1),
            "max_ms": round(times[-1] * 1000, 1),
            "mean_ms": round(statistics.mean(times) * 1000, 1),
            "etcd_cpu_ms_per_apply": round(cpu * 1000 / len(times), 2),
            "etcd_grpc_sent_bytes_per_apply": round(sent / len(times)),
            "seconds": round(elapsed, 1),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{args.gateways} gateways, {args.members} etcd members, {len(times)} applies: "
                  f"propagation p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms; "
                  f"etcd CPU {result['etcd_cpu_ms_per_apply']} ms and {result['etcd_grpc_sent_bytes_per_apply']} "
                  f"gRPC bytes sent per apply ({elapsed:.1f} s)")
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
