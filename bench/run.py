#!/usr/bin/env python3
"""Side-by-side benchmark: nginx alone, HAProxy (mTLS only, all checks) and
bindgate (all checks), one run, one machine, the same load generator.

Started by bench/run.sh, which installs and builds what this needs. Layout
(the HAProxy baseline's): the gateway under test pinned to CPU 1, the load
generator and nginx to CPU 0. Every number that compares gateways is per
gateway core (requests per second divided by the cores the gateway used), since
raw req/s also depends on how much CPU the load generator got.

One row leaves that layout: `bindgate-full-h1-2cores` runs a second bindgate
process on two CPUs (so two tokio workers), with the load generator unpinned on
two threads, to see how bindgate scales from one core to two.

Environment knobs: DURATION (seconds per row, default 5), ROUNDS (5), CONNS (64),
H2_CONNS x H2_STREAMS (16 x 4), IDLE_CONNS (10000), ONLY (space-separated
row names), PIN (1: pin as above; 0: nothing pinned), BINDGATE_BIN (the
bindgate binary to measure, default target/release/bindgate: to set an older
build beside HAProxy in the same conditions as the current one).
"""

import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RUN = BENCH / "run"
PKI = RUN / "pki"
BINDGATE = Path(os.environ.get("BINDGATE_BIN", ROOT / "target" / "release" / "bindgate"))
LOADGEN = ROOT / "target" / "release" / "examples" / "loadgen"

DURATION = int(os.environ.get("DURATION", "5"))
# The machine's speed drifts by tens of percent within minutes (shared VMs):
# each round runs every row once, HAProxy and bindgate rows back to back,
# and the report takes medians over rounds.
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CONNS = int(os.environ.get("CONNS", "64"))
H2_CONNS = int(os.environ.get("H2_CONNS", "16"))
H2_STREAMS = int(os.environ.get("H2_STREAMS", "4"))
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "10000"))
# HAProxy refuses to start unless the open-file limit covers two descriptors
# per connection of its maxconn; where the hard limit is lower (containers
# often have 20000), the idle row uses fewer connections, the same for both.
_HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
HAP_MAXCONN = min(IDLE_CONNS + 200, (_HARD_NOFILE - 100) // 2)
IDLE_CONNS = min(IDLE_CONNS, HAP_MAXCONN - 200)
ONLY = set(os.environ.get("ONLY", "").split())
PIN = os.environ.get("PIN", "1") == "1"
CPU_GATEWAY, CPU_LOAD = ("1", "0") if PIN else (None, None)
# The two-core row's bindgate: CPUs 0 and 1, which is every CPU of the 2-vCPU
# bench machine, and still two (two tokio workers) on a bigger one.
CPU_TWO_CORES = "0,1" if PIN else None
TWO_CORES_ROW = "bindgate-full-h1-2cores"
HZ = os.sysconf("SC_CLK_TCK")

ISS, AUD = "https://issuer.test", "https://api.test"
NGINX, HAP_FULL, HAP_MTLS, BG, BG_ADMIN = 18080, 18443, 18444, 18453, 18454
# The second bindgate of the two-core row (listener, admin).
BG2, BG2_ADMIN = 18455, 18456

children = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pinned(cpu, argv):
    return (["taskset", "-c", cpu] if cpu else []) + [str(a) for a in argv]


def spawn(name, argv, env=None, cpu=None):
    logf = open(RUN / f"{name}.log", "w")
    p = subprocess.Popen(pinned(cpu, argv), stdout=logf, stderr=subprocess.STDOUT,
                         env={**os.environ, **(env or {})}, cwd=RUN)
    children.append(p)
    return p


def stop_all():
    for p in children:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in children:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def wait_port(port, proc, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {proc.args} exited with {proc.returncode}; see {RUN}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: nothing listening on 127.0.0.1:{port}")


def cpu_seconds(pid, with_children=False):
    """User + system CPU of a process (and its direct children, for nginx)."""
    pids = [pid]
    if with_children:
        try:
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            pass
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / HZ


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, **kw)


def prepare_pki():
    """Both gateways get the same PKI and tokens, made by bindgate's dev tooling."""
    if PKI.exists():
        shutil.rmtree(PKI)
    run([BINDGATE, "dev-certs", "--out", PKI], stdout=subprocess.DEVNULL)
    (PKI / "haproxy-server.pem").write_text(
        (PKI / "server.pem").read_text() + (PKI / "server-key.pem").read_text())
    run(["openssl", "pkey", "-in", PKI / "issuer-key.pem", "-pubout", "-out", PKI / "issuer.pub.pem"])
    mint = [BINDGATE, "mint", "--key", PKI / "issuer-key.pem", "--cert", PKI / "client-a.pem",
            "--iss", ISS, "--aud", AUD, "--ttl", "24h"]
    (PKI / "token-a.jwt").write_text(run(mint, capture_output=True, text=True).stdout.strip())
    return mint


def mint_distinct(mint, count, round_no):
    path = PKI / f"distinct-tokens-{round_no}.txt"
    started = time.time()
    with open(path, "w") as out:
        run(mint + ["--count", count], stdout=out)
    log(f"bench: minted {count} distinct tokens in {time.time() - started:.1f}s")
    return path


class Target:
    def __init__(self, name, proc, with_children=False):
        self.name, self.proc, self.with_children = name, proc, with_children

    def cpu(self):
        return cpu_seconds(self.proc.pid, self.with_children)


def loadgen(args, cpu=CPU_LOAD, timeout=None):
    """Runs the load generator; returns its JSON summary and the CPU seconds it used."""
    argv = pinned(cpu, [LOADGEN] + [str(a) for a in args])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout or DURATION + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit(f"bench: load generator did not stop: {argv}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bench: load generator failed ({proc.returncode}): {err.strip()}")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]), usage.ru_utime + usage.ru_stime


HAPROXY_ARGV = ["haproxy", "-db", "-f", BENCH / "haproxy.cfg"]
BINDGATE_ARGV = [BINDGATE, "run", "--config", BENCH / "gateway.toml"]
# Access logs off, as HAProxy logs nothing here; warnings and errors still go to bindgate.log.
BINDGATE_ENV = {"RUST_LOG": "warn"}
HAP_FULL_URL, HAP_MTLS_URL = f"https://127.0.0.1:{HAP_FULL}/", f"https://127.0.0.1:{HAP_MTLS}/"
BG_FULL_URL, BG_MTLS_URL = f"https://127.0.0.1:{BG}/", f"https://127.0.0.1:{BG}/mtls/"
BG2_FULL_URL = f"https://127.0.0.1:{BG2}/"


def two_core_config():
    """bench/gateway.toml on the second bindgate's ports, written to run/gateway-2cores.toml.

    bindgate resolves relative paths against the configuration file's
    directory. gateway.toml sits in bench/ and names "run/pki/..."; the copy
    sits in bench/run/, so the same files are "pki/..." from there."""
    text = (BENCH / "gateway.toml").read_text()
    for old, new in ((f'"127.0.0.1:{BG}"', f'"127.0.0.1:{BG2}"'),
                     (f'"127.0.0.1:{BG_ADMIN}"', f'"127.0.0.1:{BG2_ADMIN}"'),
                     ('"run/pki/', '"pki/')):
        if old not in text:
            sys.exit(f"bench: {old} not found in bench/gateway.toml; update run.py's two_core_config")
        text = text.replace(old, new)
    path = RUN / "gateway-2cores.toml"
    path.write_text("# Written by run.py from ../gateway.toml for the two-core row: other ports,\n"
                    "# paths relative to this directory.\n" + text)
    return path


def haproxy_env(maxconn, threads):
    return {"HAP_PKI": str(PKI), "HAP_NBTHREAD": str(threads), "HAP_MAXCONN": str(maxconn)}


def start_nginx(cpu=None):
    """The upstream both gateways forward to."""
    (RUN / "nginx" / "tmp").mkdir(parents=True, exist_ok=True)
    nginx = spawn("nginx", ["nginx", "-p", RUN / "nginx", "-e", RUN / "nginx" / "error.log",
                            "-c", BENCH / "nginx.conf"], cpu=cpu)
    wait_port(NGINX, nginx)
    return nginx


def tls_args():
    return ["--ca", PKI / "ca.pem", "--cert", PKI / "client-a.pem", "--key", PKI / "client-a-key.pem"]


def measure(name, target, url, extra, upstream=None, load_cpu=CPU_LOAD):
    """One row: bounded load on `url`, CPU of the gateway, the upstream and the load generator.

    `load_cpu`: where the load generator runs (None: unpinned)."""
    if ONLY and name not in ONLY:
        return None
    before = {"gw": target.cpu() if target else 0.0, "up": upstream.cpu() if upstream else 0.0}
    lg_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    lg_before = lg_before.ru_utime + lg_before.ru_stime
    started = time.time()
    summary, lg_after = loadgen(extra + ["--duration", f"{DURATION}s", url], cpu=load_cpu)
    wall = time.time() - started
    gw_cores = (target.cpu() - before["gw"]) / wall if target else 0.0
    up_cores = (upstream.cpu() - before["up"]) / wall if upstream else 0.0
    lg_cores = (lg_after - lg_before) / wall
    rps = summary.get("rps_ok", 0.0)
    row = {
        "name": name, "rps": rps, "gw_cores": gw_cores, "up_cores": up_cores, "lg_cores": lg_cores,
        "per_core": rps / gw_cores if gw_cores > 0.05 else None,
        "latency": summary.get("latency_ms", {}), "ok": summary.get("ok", 0),
        "non2xx": summary.get("non2xx", 0), "errors": summary.get("errors", 0),
        "error_kinds": summary.get("error_kinds", {}), "handshakes": summary.get("handshakes", {}),
        "elapsed": summary.get("elapsed_s", wall), "tokens_exhausted": summary.get("tokens_exhausted", False),
        # Refresh-chain rows (run_refresh.py): chains that ended before the deadline.
        "chains_ended": summary.get("chains_ended"),
    }
    hs = row["handshakes"]
    row["handshakes_per_s"] = (hs.get("full", 0) + hs.get("resumed", 0)) / row["elapsed"] if row["elapsed"] else 0
    lat = row["latency"]
    log(f"  {name:24} {rps:9.0f} req/s  gw {gw_cores:4.2f} cores  "
        f"per core {row['per_core'] or 0:8.0f}  p50 {lat.get('p50', 0):6.2f} ms  p99 {lat.get('p99', 0):6.2f} ms  "
        f"loadgen {lg_cores:4.2f}  non2xx {row['non2xx']} errors {row['errors']}")
    return row


def idle_memory(name, target, url):
    """RSS growth of the gateway while IDLE_CONNS mTLS connections sit open and idle."""
    if ONLY and name not in ONLY:
        return None
    pid = target.proc.pid
    before = memory_kib(pid, "VmRSS")
    argv = pinned(CPU_LOAD, [LOADGEN] + tls_args() + [
        "--token", (PKI / "token-a.jwt").read_text().strip(),
        "--idle-connections", IDLE_CONNS, "--hold", "6s", url])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    time.sleep(1.0)
    held = memory_kib(pid, "VmRSS")
    try:
        rest, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit("bench: idle-connection run did not stop")
    opened = json.loads(first).get("idle_open", 0) if first.startswith("{") else 0
    per_conn = (held - before) * 1024 / opened if opened else None
    log(f"  {name:24} {opened} idle connections: RSS {before / 1024:.1f} -> {held / 1024:.1f} MiB, "
        f"{(per_conn or 0) / 1024:.1f} KiB per connection")
    return {"name": name, "opened": opened, "rss_before_kib": before, "rss_held_kib": held,
            "per_conn_bytes": per_conn}


def machine():
    model = ""
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    version = lambda argv: subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0] \
        if shutil.which(argv[0]) else "missing"
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip() \
        if shutil.which("nginx") else "missing"
    return {
        "cpus": os.cpu_count(), "model": model, "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "haproxy": version(["haproxy", "-v"]), "nginx": nginx,
        "openssl": version(["openssl", "version"]), "rustc": version(["rustc", "--version"]),
        "bindgate": os.environ.get("BINDGATE_BIN") or subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main():
    RUN.mkdir(exist_ok=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_HARD_NOFILE, _HARD_NOFILE))
    if IDLE_CONNS < 1000:
        sys.exit(f"bench: the open-file limit ({_HARD_NOFILE}) is too low for the idle-connection row")

    mint = prepare_pki()
    token = (PKI / "token-a.jwt").read_text().strip()
    nginx = start_nginx(cpu=CPU_LOAD)
    haproxy = spawn("haproxy", HAPROXY_ARGV, env=haproxy_env(HAP_MAXCONN, 1 if PIN else 2), cpu=CPU_GATEWAY)
    wait_port(HAP_FULL, haproxy)
    bindgate = spawn("bindgate", BINDGATE_ARGV, env=BINDGATE_ENV, cpu=CPU_GATEWAY)
    wait_port(BG, bindgate)
    up, hap, bg = Target("nginx", nginx, True), Target("haproxy", haproxy), Target("bindgate", bindgate)
    # The two-core row's own bindgate, started only when that row runs: on two
    # CPUs, available_parallelism() gives it a multi-thread runtime with two workers.
    bindgate2 = bg2 = None
    if (not ONLY or TWO_CORES_ROW in ONLY) and (os.cpu_count() or 1) >= 2:
        bindgate2 = spawn("bindgate-2cores", [BINDGATE, "run", "--config", two_core_config()],
                          env=BINDGATE_ENV, cpu=CPU_TWO_CORES)
        wait_port(BG2, bindgate2)
        bg2 = Target("bindgate-2cores", bindgate2)
    elif not ONLY or TWO_CORES_ROW in ONLY:
        log(f"bench: one CPU only, no {TWO_CORES_ROW} row")

    # A file per round: no round may send bindgate a token it has seen (and cached) before.
    distinct = {}
    if not ONLY or ONLY & {"haproxy-full-distinct", "bindgate-full-distinct"}:
        count = int(os.environ.get("DISTINCT_TOKENS", str(30000 * DURATION)))
        distinct = {r: mint_distinct(mint, count, r) for r in range(1, ROUNDS + 1)}

    h1 = ["--connections", CONNS, "--threads", 1]
    h2 = ["--http2", "--connections", H2_CONNS, "--streams", H2_STREAMS, "--threads", 1]
    # The two-core row's load generator: two threads, unpinned, the same connections.
    h1_two = ["--connections", CONNS, "--threads", 2]
    auth = ["--token", token]
    tls = tls_args()
    rows = []
    hap_full, hap_mtls, bg_full, bg_mtls = HAP_FULL_URL, HAP_MTLS_URL, BG_FULL_URL, BG_MTLS_URL
    log(f"bench: {DURATION}s per row, {CONNS} connections (h2: {H2_CONNS} x {H2_STREAMS} streams)")
    # (row, gateway, url, load generator arguments[, the load generator's CPUs: None unpinned])
    plan = [
        ("upstream-h1", None, f"http://127.0.0.1:{NGINX}/", h1),
        ("haproxy-mtls-h1", hap, hap_mtls, h1 + tls),
        ("bindgate-mtls-h1", bg, bg_mtls, h1 + tls),
        ("haproxy-full-h1", hap, hap_full, h1 + tls + auth),
        ("bindgate-full-h1", bg, bg_full, h1 + tls + auth),
    ]
    if bg2:
        plan += [(TWO_CORES_ROW, bg2, BG2_FULL_URL, h1_two + tls + auth, None)]
    plan += [
        ("haproxy-mtls-h2", hap, hap_mtls, h2 + tls),
        ("bindgate-mtls-h2", bg, bg_mtls, h2 + tls),
        ("haproxy-full-h2", hap, hap_full, h2 + tls + auth),
        ("bindgate-full-h2", bg, bg_full, h2 + tls + auth),
        ("haproxy-full-newconn-resumed", hap, hap_full, h1 + tls + auth + ["--new-connection", "--resume"]),
        ("bindgate-full-newconn-resumed", bg, bg_full, h1 + tls + auth + ["--new-connection", "--resume"]),
        ("haproxy-full-newconn-full", hap, hap_full, h1 + tls + auth + ["--new-connection"]),
        ("bindgate-full-newconn-full", bg, bg_full, h1 + tls + auth + ["--new-connection"]),
    ]
    if distinct:
        plan += [
            ("haproxy-full-distinct", hap, hap_full, h1 + tls + ["--tokens", "{distinct}"]),
            ("bindgate-full-distinct", bg, bg_full, h1 + tls + ["--tokens", "{distinct}"]),
        ]
    for round_no in range(1, ROUNDS + 1):
        log(f"bench: round {round_no} of {ROUNDS}")
        for name, target, url, args, *load_cpu in plan:
            args = [distinct[round_no] if a == "{distinct}" else a for a in args]
            row = measure(name, target, url, args, upstream=up,
                          load_cpu=load_cpu[0] if load_cpu else CPU_LOAD)
            if row:
                row["round"] = round_no
                rows.append(row)
                time.sleep(0.5)
    idle = [r for r in (idle_memory("haproxy-idle", hap, hap_full),
                        idle_memory("bindgate-idle", bg, bg_full)) if r]
    peaks = {"haproxy": memory_kib(haproxy.pid, "VmHWM"), "bindgate": memory_kib(bindgate.pid, "VmHWM")}
    if bindgate2:
        peaks["bindgate-2cores"] = memory_kib(bindgate2.pid, "VmHWM")
    result = {"machine": machine(), "settings": {
        "duration_s": DURATION, "rounds": ROUNDS, "connections": CONNS, "h2": [H2_CONNS, H2_STREAMS], "idle": IDLE_CONNS,
        "pinned": PIN, "two_cores": {"gateway_cpus": CPU_TWO_CORES, "loadgen_threads": 2} if bindgate2 else None},
        "rows": rows, "idle": idle, "peak_rss_kib": peaks}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = RUN / f"results-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    log(f"bench: raw results in {out.relative_to(ROOT)}")
    run([sys.executable, BENCH / "report.py", out, BENCH / "RESULTS.md"])


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
