#!/usr/bin/env python3
"""The README's load report for the example server, measured in one run.

Usage: scripts/load-report.py [seconds per measurement, default 15]

Builds the server (release), then, each against a fresh server process on loopback:

1. verifies: `wrk` with 64 connections sending `GET /api/v1/me` with one login token, on
   SQLite (a new file) and on PostgreSQL (`API_TOKENS_TEST_POSTGRES_URL`, default
   postgres://postgres@127.0.0.1:5432/test, in a schema of its own dropped afterwards);
2. the login flood: `wrk` with 64 connections logging in with made-up emails, with the
   login limits lifted (as for a botnet of many addresses, so that every login reaches the
   password checkers); the peak is the kernel's own high-water mark of resident memory
   (VmHWM).

Prints one Markdown table. wrk and the server share the machine's cores.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
PG_URL = os.environ.get(
    "API_TOKENS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
USERS = "load@example.com:load-password:tenant_load"

FLOOD_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"flood-%d-%d@example.com","password":"guess"}', math.random(1000000000), counter)
  return wrk.format("POST", "/auth/token", {["content-type"] = "application/json"}, body)
end
"""


def build():
    out = subprocess.run(
        ["cargo", "build", "--release", "--example", "server", "--all-features",
         "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "server" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("could not find the server binary")


def start(binary, env):
    full = dict(os.environ, BIND="127.0.0.1:0", DEMO_USERS=USERS, RUST_LOG="warn,server=info",
                **env)
    proc = subprocess.Popen([binary], env=full, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://([0-9.:]+)", line)
        if m:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    proc.kill()
    sys.exit("the server did not start")


def login(address):
    body = json.dumps({"email": "load@example.com", "password": "load-password"}).encode()
    req = urllib.request.Request(f"http://{address}/auth/token", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["access_token"]


def wrk(args):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{SECONDS}s", "--latency", *args],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0, total


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def verifies(binary, name, env):
    proc, address = start(binary, env)
    try:
        token = login(address)
        rps, p99, bad, total = wrk(["-H", f"authorization: Bearer {token}",
                                    f"http://{address}/api/v1/me"])
        if bad:
            sys.exit(f"{name}: {bad} of {total} verifies were not 200")
        return rps, p99
    finally:
        proc.kill()
        proc.wait()


def flood(binary, db_url):
    env = {"DATABASE_URL": db_url, "DATABASE_CREATE": "true",
           "LOGIN_ATTEMPTS_PER_ADDRESS": "1000000000",
           "LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS": "1000000000",
           "LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000000",
           "LOGIN_ATTEMPTS_PER_NETWORK": "1000000000"}
    proc, address = start(binary, env)
    try:
        before = status_kb(proc.pid, "VmRSS")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(FLOOD_LUA)
        rps, p99, _, total = wrk(["-s", f.name, f"http://{address}/auth/token"])
        os.unlink(f.name)
        peak = status_kb(proc.pid, "VmHWM")
        after = status_kb(proc.pid, "VmRSS")
        return before, peak, after, total, rps
    finally:
        proc.kill()
        proc.wait()


def main():
    os.environ["PGOPTIONS"] = "--client-min-messages=warning"
    binary = build()
    # Let the build's load settle (at most a minute) before measuring.
    for _ in range(60):
        if float(open("/proc/loadavg").read().split()[0]) < 0.8:
            break
        time.sleep(1)
    load = open("/proc/loadavg").read().split()[0]
    with tempfile.TemporaryDirectory() as d:
        sqlite_url = f"sqlite://{d}/load.db"
        sqlite = verifies(binary, "SQLite", {"DATABASE_URL": sqlite_url, "DATABASE_CREATE": "true"})
        schema = f"load_{os.getpid()}"
        subprocess.run(["psql", PG_URL, "-q", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE SCHEMA {schema}"], check=True)
        try:
            sep = "&" if "?" in PG_URL else "?"
            pg_url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
            postgres = verifies(binary, "PostgreSQL", {"DATABASE_URL": pg_url})
        finally:
            subprocess.run(["psql", PG_URL, "-q", "-v", "ON_ERROR_STOP=1", "-c", f"DROP SCHEMA {schema} CASCADE"], check=True)
        before, peak, after, logins, login_rps = flood(binary, f"sqlite://{d}/flood.db")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"Measured {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores ({cpu}), load average "
          f"{load} before the run; wrk -t2 -c64 -d{SECONDS}s on loopback, sharing the cores.")
    print()
    print("| what | figure |")
    print("|---|---|")
    print(f"| `GET /api/v1/me` on SQLite (64 connections) | {sqlite[0]:,.0f} verifies/s, "
          f"p99 {sqlite[1]:.2f} ms |")
    print(f"| `GET /api/v1/me` on PostgreSQL (64 connections) | {postgres[0]:,.0f} verifies/s, "
          f"p99 {postgres[1]:.2f} ms |")
    print(f"| login flood, 64 connections of made-up emails | {logins:,} logins answered "
          f"({login_rps:,.0f}/s); RSS {before // 1024} MB before, peak {peak // 1024} MB, "
          f"{after // 1024} MB after |")


if __name__ == "__main__":
    main()
