#!/usr/bin/env python3
"""Memory held by idle TLS connections: corsgate against nginx, on loopback.

Each server gets one TLS listener (TLS 1.3, the ECDSA P-256 certificate
bench/load_tls.py makes with openssl, ALPN h2 and http/1.1), the same CORS
policy as bench/load.py and a rule answered directly (no upstream, so no
upstream connection is counted). nginx 1.22 runs with one worker and
`listen ... ssl http2`. For each server in turn, and each ALPN protocol
asked for, the script opens N TLS connections to 127.0.0.1, completes
every handshake, sends nothing more, waits for the server to settle, and
reads the server's resident memory: VmRSS from /proc/PID/status, summed
over the server's processes (for nginx, the master and the worker), before
and after. Each measurement has a freshly started server, so that memory
freed by an earlier one (kept by the allocator) does not hide the cost.
The figure is the growth of RSS divided by N: the bytes one idle
connection costs. `plain` does the same with TCP connections to a second,
plaintext HTTP/1.1 listener of each server: by difference, what TLS adds.

Neither server may close the connections while they are counted: the
generated configurations set corsgate's `limits.maxConnections` above N
and its header and idle timeouts to ten minutes, and nginx's
`worker_connections`, `client_header_timeout` and `keepalive_timeout` to
match. The script checks every connection is still open after the
reading (a closed one reads as end of stream).

Usage: python3 bench/idle_rss.py [--connections 10000] [--alpn h2,http/1.1,plain]
Needs: nginx, openssl and the release build `cargo build --release -p
corsgate`. Ports are picked free at run time; the file-descriptor limit is
raised to its hard limit (it must exceed N plus a few).
"""

import argparse
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the policy's origins, the release build's path)
from load_tls import certificate, free_port  # noqa: E402

TEN_MINUTES_MS = 600_000


def corsgate_config(port, plain, cert, key, n):
    origins = ", ".join(f'"{o}"' for o in load.ORIGINS + ["https://*.tenants.example.com"])
    return f"""
policies:
  bench:
    allowOrigins: [{origins}]
    allowMethods: [GET, POST, PUT, DELETE]
    allowHeaders: [Authorization, Content-Type, X-Request-ID]
    allowCredentials: true
    maxAge: 600
vservices:
  - name: tls
    listen: "127.0.0.1:{port}"
    tls: {{ certFile: "{cert}", keyFile: "{key}" }}
    cors: bench
    limits:
      maxConnections: {n + 1000}
      headerTimeoutMs: {TEN_MINUTES_MS}
      idleTimeoutMs: {TEN_MINUTES_MS}
    rules:
      - match: {{ path: {{ prefix: / }} }}
        direct: {{ status: 200, body: "ok" }}
  - name: plain
    listen: "127.0.0.1:{plain}"
    cors: bench
    limits:
      maxConnections: {n + 1000}
      headerTimeoutMs: {TEN_MINUTES_MS}
      idleTimeoutMs: {TEN_MINUTES_MS}
    rules:
      - match: {{ path: {{ prefix: / }} }}
        direct: {{ status: 200, body: "ok" }}
"""


def nginx_config(prefix, port, plain, cert, key, n):
    entries = "\n".join(f'    "{o}" $http_origin;' for o in load.ORIGINS)
    return f"""
worker_processes 1;
worker_rlimit_nofile {n + 1100};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {n + 1000}; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  client_header_timeout 600s;
  keepalive_timeout 600s;
  map $http_origin $cors_origin {{
    default "";
{entries}
    "~^https://[a-z0-9-]+\\.tenants\\.example\\.com$" $http_origin;
  }}
  server {{
    listen 127.0.0.1:{port} ssl http2 backlog=4096;
    listen 127.0.0.1:{plain} backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    location / {{
      add_header Access-Control-Allow-Origin $cors_origin always;
      add_header Access-Control-Allow-Credentials true always;
      add_header Vary Origin always;
      return 200 "ok";
    }}
  }}
}}
"""


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def open_idle(port, n, alpn, batch=200):
    """N TLS connections to 127.0.0.1:port with completed handshakes,
    `batch` handshakes in flight at a time (non-blocking). Returns the
    SSL sockets and how many negotiated `alpn`."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols([alpn])
    sel = selectors.DefaultSelector()
    done, started, pending = [], 0, 0

    def start():
        # A loopback connect completes in the kernel (the listen backlog
        # holds it until accepted); the handshakes are what runs in parallel.
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setblocking(False)
        s = ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        sel.register(s, selectors.EVENT_WRITE)

    deadline = time.time() + 300
    while len(done) < n:
        while started < n and pending < batch:
            start()
            started += 1
            pending += 1
        if time.time() > deadline:
            raise RuntimeError(f"only {len(done)} of {n} handshakes in 300 s")
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                s.do_handshake()
            except ssl.SSLWantReadError:
                sel.modify(s, selectors.EVENT_READ)
                continue
            except ssl.SSLWantWriteError:
                sel.modify(s, selectors.EVENT_WRITE)
                continue
            sel.unregister(s)
            pending -= 1
            done.append(s)
    sel.close()
    agreed = sum(1 for s in done if s.selected_alpn_protocol() == alpn)
    return done, agreed


def open_plain(port, n):
    """N plaintext TCP connections to 127.0.0.1:port, nothing sent."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        socks.append(s)
    return socks, n


def still_open(socks):
    """How many of `socks` the server has not closed (no end of stream, no
    reset). Session tickets the server sent after the handshake are read
    and dropped."""
    alive = 0
    for s in socks:
        try:
            while True:
                if s.recv(4096) == b"":
                    break
        except (ssl.SSLWantReadError, BlockingIOError):
            # Nothing more to read, and not closed.
            alive += 1
        except (ssl.SSLError, OSError):
            pass
    return alive


def measure(name, pids, port, n, alpn, settle):
    before = rss_bytes(pids)
    t0 = time.time()
    socks, agreed = open_plain(port, n) if alpn == "plain" else open_idle(port, n, alpn)
    took = time.time() - t0
    time.sleep(settle)
    after = rss_bytes(pids)
    alive = still_open(socks)
    for s in socks:
        s.close()
    per = (after - before) / n
    print(f"{name:8} alpn {alpn:8} {n} connections in {took:5.1f} s ({agreed} agreed on "
          f"{alpn}, {alive} open at the reading): RSS {before / 2**20:7.1f} -> "
          f"{after / 2**20:7.1f} MiB, {per:8.0f} bytes per idle connection", flush=True)
    if alive != n or agreed != n:  # "plain": no ALPN, every one counts
        raise RuntimeError(f"{name}: {n - alive} connections closed, {n - agreed} without "
                           f"{alpn}; the figure would not count them all")
    return per


def stop(p):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--alpn", default="h2,http/1.1,plain",
                    help="ALPN protocols to ask for; `plain`: TCP connections to a "
                    "plaintext HTTP/1.1 listener, no TLS (what TLS adds, by difference)")
    ap.add_argument("--settle", type=float, default=3.0, metavar="SECONDS",
                    help="wait after the last handshake before reading RSS")
    args = ap.parse_args()
    n = args.connections
    for tool in ["nginx", "openssl"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install nginx openssl)")
    corsgate = os.path.join(load.TARGET, "corsgate")
    if not os.path.exists(corsgate):
        sys.exit("no release build: cargo build --release -p corsgate")
    # The client holds N sockets, each server N connections (and the
    # servers inherit this limit).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 1100:
        sys.exit(f"the hard file-descriptor limit {hard} is below {n + 1100}")
    soft = hard if hard != resource.RLIM_INFINITY else n + 1100
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    tmp = tempfile.mkdtemp(prefix="corsgate-bench-idle-")
    ports = {"corsgate": free_port(), "nginx": free_port()}
    plain = {"corsgate": free_port(), "nginx": free_port()}
    env = dict(os.environ, RUST_LOG="warn")
    procs = []
    try:
        cert, key = certificate(tmp)
        with open(os.path.join(tmp, "corsgate.yaml"), "w") as f:
            f.write(corsgate_config(ports["corsgate"], plain["corsgate"], cert, key, n))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(nginx_config(tmp, ports["nginx"], plain["nginx"], cert, key, n))
        commands = {
            "corsgate": [corsgate, "run", "--config", os.path.join(tmp, "corsgate.yaml")],
            "nginx": ["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
        }
        results = {}
        for alpn in args.alpn.split(","):
            for name, cmd in commands.items():
                # Children inherit the raised descriptor limit.
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
                procs.append(p)
                load.wait_port(ports[name])
                time.sleep(1)
                pids = load.process_tree(p.pid)
                port = plain[name] if alpn == "plain" else ports[name]
                results[(name, alpn)] = measure(name, pids, port, n, alpn, args.settle)
                stop(p)
        print(f"\n| ALPN | corsgate bytes / idle connection | nginx bytes / idle connection "
              f"| corsgate / nginx |")
        print("|---|---:|---:|---:|")
        for alpn in args.alpn.split(","):
            ours, theirs = results[("corsgate", alpn)], results[("nginx", alpn)]
            print(f"| {alpn} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} |")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
