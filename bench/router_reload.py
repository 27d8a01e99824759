#!/usr/bin/env python3
"""What a route change costs the connections being opened meanwhile (docs/gitops.md,
"Redeploys without downtime").

Every route change makes Caddy reload its config, and Caddy 2.6 gives each config a new
listening socket (SO_REUSEPORT). This starts a real Caddy with one route, opens fresh
connections to it from CLIENTS threads without pause, and changes the route RELOADS times
through the admin API, as the router does. It counts the connections that were refused,
reset during the handshake (the documented window) and reset after it, and does so twice:
with net.ipv4.tcp_migrate_req = 1, as `idp serve` sets it, and with 0 (the baseline, only
when this user may write the sysctl; the value is put back).

    python3 bench/router_reload.py [RELOADS] [CLIENTS]     # defaults: 1000 3
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SYSCTL = "/proc/sys/net/ipv4/tcp_migrate_req"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, deadline_s=15.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"caddy did not listen on {port} within {deadline_s} s")


def run(reloads, clients, admin_port, port):
    counts = {"answered": 0, "refused": 0, "reset_in_handshake": 0, "reset_after": 0, "other": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def bump(key):
        with lock:
            counts[key] += 1

    def hammer():
        while not stop.is_set():
            s = socket.socket()
            s.settimeout(5)
            try:
                try:
                    s.connect(("127.0.0.1", port))
                except ConnectionRefusedError:
                    bump("refused")
                    continue
                except ConnectionResetError:
                    bump("reset_in_handshake")
                    continue
                try:
                    s.sendall(b"GET / HTTP/1.0\r\nHost: app\r\n\r\n")
                    bump("answered" if s.recv(64).startswith(b"HTTP/1") else "other")
                except ConnectionResetError:
                    bump("reset_after")
            except OSError:
                bump("other")
            finally:
                s.close()

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    for i in range(reloads):
        body = json.dumps({"@id": "app", "handle": [{"handler": "static_response", "body": f"v{i}"}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{admin_port}/id/app", data=body, method="PATCH",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    return counts, elapsed


def main():
    reloads = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    caddy = shutil.which("caddy")
    if caddy is None or not os.path.exists(SYSCTL):
        print("SKIPPED: needs caddy and Linux 5.14+ (net.ipv4.tcp_migrate_req)")
        return 0
    original = open(SYSCTL).read().strip()
    writable = os.access(SYSCTL, os.W_OK)
    work = tempfile.mkdtemp(prefix="idp-bench-router-")
    admin_port, port = free_port(), free_port()
    config = {
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
        "apps": {"http": {"servers": {"idp": {
            "listen": [f"127.0.0.1:{port}"],
            "routes": [{"@id": "app", "handle": [{"handler": "static_response", "body": "v"}]}]}}}},
    }
    with open(os.path.join(work, "caddy.json"), "w") as f:
        json.dump(config, f)
    env = dict(os.environ, HOME=work, XDG_DATA_HOME=work, XDG_CONFIG_HOME=work)
    proc = subprocess.Popen([caddy, "run", "--config", os.path.join(work, "caddy.json")], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        wait_for_port(port)
        settings = ["1", "0"] if writable else [original]
        for value in settings:
            if writable:
                with open(SYSCTL, "w") as f:
                    f.write(value + "\n")
            counts, elapsed = run(reloads, clients, admin_port, port)
            results.append((value, counts, elapsed))
    finally:
        if writable:
            with open(SYSCTL, "w") as f:
                f.write(original + "\n")
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"router_reload: {reloads} route changes, {clients} clients opening connections without pause")
    for value, c, elapsed in results:
        opened = sum(c.values())
        failed = opened - c["answered"]
        print(f"  tcp_migrate_req={value}: {opened} connections in {elapsed:.1f} s ({opened / elapsed:.0f}/s), "
              f"{failed} failed: {c['reset_in_handshake']} reset in the handshake, {c['reset_after']} reset after it, "
              f"{c['refused']} refused, {c['other']} other")
    if len(results) == 2:
        ours = sum(results[0][1].values()) - results[0][1]["answered"]
        base = sum(results[1][1].values()) - results[1][1]["answered"]
        print(f"  failed connections with migration / without (baseline): {ours} / {base} = "
              f"{ours / base if base else float('nan'):.3f}")
    else:
        print("  baseline (tcp_migrate_req=0) not measured: this user cannot write " + SYSCTL)
    print("  reproduce: python3 bench/router_reload.py " + f"{reloads} {clients}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
