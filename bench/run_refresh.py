#!/usr/bin/env python3
"""Refresh-token benchmark: bindgate's refresh_token grant on its embedded
SQLite store and on a PostgreSQL server, beside panva's oidc-provider's
refresh grant (its memory adapter), and bindgate's token exchanges (each one
starts a family: a write too).

Started by bench/refresh.sh, which installs and builds what this needs.
Shares run.py's helpers, layout and knobs: every server under test on CPU 1,
the load generator (one thread) on CPU 0, and with it the PostgreSQL server
of the postgres rows (its CPU is reported beside bindgate's). Every
comparison is per server core.

All three are public clients (`mobile`, no client authentication) whose
refresh tokens are bound to one DPoP key (dpop-key.pem, ES256), and rotate
on every refresh; a rotated-away token presented again revokes the family.
Each load-generator connection owns one chain: it refreshes, takes the
answer's refresh_token, and refreshes that, with a fresh DPoP proof each time
(loadgen --refresh-chains). The chains live across rows and rounds: the
files are written back after each row.

Rows (each round runs them all, the three servers of a kind back to back):

  bindgate-sqlite-refresh, bindgate-postgres-refresh, oidc-provider-refresh
      TOKEN_CONNS chains (16, as bench/run_as.py's token rows): throughput.
  ...-refresh-c64
      CHAINS_P99 chains (64): the p99 of a refresh under 64 concurrent clients.
  bindgate-sqlite-exchange, bindgate-postgres-exchange
      TOKEN_CONNS connections of RFC 8693 token exchanges (the dev IdP's
      id_token for a DPoP-bound access token and a family's first refresh
      token). oidc-provider has no token exchange.

After the rounds, SQLite's group commit: one more CHAINS_P99-chain row on
the SQLite store with `perf record` counting its fsync/fdatasync calls per
file (strace -c when perf cannot), so refreshes per commit of the WAL.

Environment knobs (run.py's): DURATION (seconds per row, default 5), ROUNDS
(3), ONLY (space-separated row names), PIN (1); and TOKEN_CONNS (16),
CHAINS_P99 (64), SEEDS (refresh chains seeded per server, 2 x CHAINS_P99),
WARMUP (seconds of unmeasured load per server and grant before the first
round, 3), FSYNC_SECONDS (the group-commit row, DURATION; 0: skipped),
KEEP=1 (keep the temp dir: the SQLite file, the PostgreSQL cluster).
"""

import base64
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the shared helpers and knobs)
from run import BENCH, BINDGATE, CPU_GATEWAY, CPU_LOAD, DURATION, LOADGEN, ONLY, PKI, ROOT, ROUNDS, RUN, log  # noqa: E402

AS_DIR = BENCH / "as"
BG_SQLITE, BG_POSTGRES, OP, PG = 18483, 18485, 18487, 18489
URLS = {
    "bindgate-sqlite": f"https://localhost:{BG_SQLITE}/token",
    "bindgate-postgres": f"https://localhost:{BG_POSTGRES}/token",
    "oidc-provider": f"https://localhost:{OP}/token",
}
TOKEN_CONNS = int(os.environ.get("TOKEN_CONNS", "16"))
CHAINS_P99 = int(os.environ.get("CHAINS_P99", "64"))
# Spares: a chain that ends (an error, a row cut at its deadline) is dropped.
SEEDS = int(os.environ.get("SEEDS", str(2 * max(CHAINS_P99, TOKEN_CONNS))))
WARMUP = int(os.environ.get("WARMUP", "3"))
FSYNC_SECONDS = int(os.environ.get("FSYNC_SECONDS", str(DURATION)))
KEEP = os.environ.get("KEEP", "0") == "1"
CLIENT_ID = "mobile"
# initdb and postgres refuse to run as root: as root, they run as this user
# (scripts/test-deps.sh creates it, as the tests need it too).
PG_USER = "bindgate-test"
PG_ROLE = "bindgate"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
IDP = "https://idp.bindgate.dev"
PLAN_NAMES = [
    "bindgate-sqlite-refresh", "bindgate-postgres-refresh", "oidc-provider-refresh",
    "bindgate-sqlite-refresh-c64", "bindgate-postgres-refresh-c64", "oidc-provider-refresh-c64",
    "bindgate-sqlite-exchange", "bindgate-postgres-exchange",
]


def chains_file(server):
    return RUN / f"chains-{server}.txt"


def count_lines(path):
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def base_args(connections):
    # Public clients: no client certificate, a DPoP proof in every request.
    return ["--connections", connections, "--threads", 1, "--ca", PKI / "ca.pem", "--dpop-key", PKI / "dpop-key.pem"]


def chain_args(server, connections):
    path = chains_file(server)
    return base_args(connections) + ["--refresh-chains", path, "--client-id", CLIENT_ID, "--chains-out", path]


def exchange_form():
    subject_token = (RUN / "refresh-id-token.jwt").read_text().strip()
    return (f"grant_type={EXCHANGE}&client_id={CLIENT_ID}&subject_token={subject_token}"
            f"&subject_token_type={ID_TOKEN}")


def exchange_args(connections):
    return base_args(connections) + ["--post-form", exchange_form()]


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def loadgen_once(args, url):
    argv = [LOADGEN] + args + [url]
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)
    summary = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    if not summary:
        sys.exit(f"bench: the load generator failed: {out.stderr.strip()}")
    return summary


def seed_bindgate(server, count):
    """Token exchanges, each a family: their refresh tokens start the chains (appended to the file)."""
    fresh = RUN / f"seeds-{server}.txt"
    args = exchange_args(min(8, count)) + ["--max-requests", count, "--duration", "30s",
                                           "--save-refresh-tokens", fresh, "--sample-body"]
    summary = loadgen_once(args, URLS[server])
    got = count_lines(fresh)
    if got < count:
        sys.exit(f"bench: {server}: {got} of {count} token exchanges gave a refresh token: "
                 f"{summary.get('sample_failure') or summary.get('error_kinds')}")
    with open(chains_file(server), "a") as chains:
        chains.write(fresh.read_text())
    fresh.unlink()


def describe(server, grant, summary, presented=None):
    """Checks one answer (a DPoP-bound at+jwt, a refresh token that differs from the one presented)."""
    body = summary.get("sample_body")
    if not body:
        sys.exit(f"bench: {server} refused the {grant} request: "
                 f"{summary.get('sample_failure') or summary.get('error_kinds')}")
    answer = json.loads(body)
    header, claims = (b64json(p) for p in answer["access_token"].split(".")[:2])
    if answer.get("token_type") != "DPoP" or "jkt" not in claims.get("cnf", {}):
        sys.exit(f"bench: {server}'s {grant} answer is not DPoP-bound: token_type {answer.get('token_type')}, "
                 f"cnf {claims.get('cnf')}")
    refresh = answer.get("refresh_token")
    if not refresh or refresh == presented:
        sys.exit(f"bench: {server}'s {grant} answer has no new refresh token")
    issued = {
        "token_type": answer["token_type"], "alg": header.get("alg"), "typ": header.get("typ"),
        "cnf": sorted(claims.get("cnf", {})), "claims": sorted(claims), "bytes": len(answer["access_token"]),
        "refresh_token_bytes": len(refresh), "expires_in": answer.get("expires_in"),
    }
    log(f"  {server:18} {grant}: {issued['token_type']} {issued['alg']} {issued['typ']}, cnf {issued['cnf']}, "
        f"claims {' '.join(issued['claims'])}, a new {len(refresh)}-character refresh token")
    return issued


def probe_refresh(server):
    """One refresh of the first chain, checked; the chain continues from its answer."""
    presented = chains_file(server).read_text().split()[0]
    summary = loadgen_once(chain_args(server, 1) + ["--max-requests", 1, "--sample-body"], URLS[server])
    return describe(server, "refresh", summary, presented)


def probe_exchange(server):
    summary = loadgen_once(exchange_args(1) + ["--max-requests", 1, "--sample-body"], URLS[server])
    return describe(server, "exchange", summary)


def reuse_check(server):
    """A rotated-away token presented again must be refused, and its family revoked: the last chain is
    refreshed twice (so its first token is no longer the predecessor, which bindgate's refresh_grace
    would honour once), then its first token is replayed, then its current one must fail too."""
    path = chains_file(server)
    tokens = path.read_text().split()
    old, scratch, current = tokens[-1], RUN / f"reuse-{server}.txt", RUN / f"reuse-{server}-current.txt"
    scratch.write_text(old + "\n")

    def chain_of(seed, requests, *extra):
        args = base_args(1) + ["--refresh-chains", seed, "--client-id", CLIENT_ID, "--max-requests", requests]
        return loadgen_once(args + list(extra), URLS[server])

    rotated = chain_of(scratch, 2, "--chains-out", current)
    replay = chain_of(scratch, 1, "--sample-body")
    after = chain_of(current, 1)
    scratch.unlink()
    current.unlink(missing_ok=True)
    path.write_text("".join(f"{t}\n" for t in tokens[:-1]))
    refused = {"400": 1}
    ok = rotated.get("ok") == 2 and replay.get("non2xx_status") == refused and after.get("non2xx_status") == refused
    log(f"  {server:18} reuse: {rotated.get('ok')} refreshes, then the first token {replay.get('non2xx_status')}, "
        f"the current one {after.get('non2xx_status')} ({'family revoked' if ok else 'UNEXPECTED'})")
    if not ok:
        sys.exit(f"bench: {server} did not revoke a family on reuse")
    return json.loads(replay.get("sample_failure") or "{}").get("error")


# --- PostgreSQL: a private cluster in a temp dir, as tests/it/common/postgres.rs starts one ---

def pg_bindir():
    candidates = []
    if os.environ.get("BINDGATE_PG_BINDIR"):
        candidates.append(Path(os.environ["BINDGATE_PG_BINDIR"]))
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted((d for d in debian.iterdir() if d.name.replace(".", "").isdigit()),
                          key=lambda d: [int(n) for n in d.name.split(".")], reverse=True)
        candidates += [d / "bin" for d in versions]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    sys.exit("bench: no PostgreSQL server (initdb, postgres): bench/refresh.sh installs Debian's postgresql")


def pg_owner():
    """(uid, gid) to run initdb and postgres as when this is root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        sys.exit(f"bench: running as root, PostgreSQL needs the unprivileged user {PG_USER} "
                 "(bench/refresh.sh creates it)")
    return entry.pw_uid, entry.pw_gid


def pg_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class Postgres:
    """The postmaster is this process's child (no pg_ctl, no runuser): its PID is the one to stop."""

    def __init__(self):
        self.bindir, self.owner = pg_bindir(), pg_owner()
        self.dir = Path(tempfile.mkdtemp(prefix="bindgate-refresh-pg-"))
        self.password = secrets.token_hex(16)
        self.proc = None
        if self.owner:
            os.chown(self.dir, *self.owner)

    def as_owner(self):
        return {"user": self.owner[0], "group": self.owner[1], "extra_groups": []} if self.owner else {}

    def start(self, cpu):
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner:
            os.chown(pwfile, *self.owner)
        data = self.dir / "data"
        initdb = [self.bindir / "initdb", "-D", data, "-U", PG_ROLE, "--auth=scram-sha-256", "--encoding=UTF8",
                  "--locale=C", f"--pwfile={pwfile}", "--no-sync"]
        out = subprocess.run([str(a) for a in initdb], capture_output=True, text=True, env=pg_env(),
                             cwd=self.dir, timeout=120, **self.as_owner())
        pwfile.unlink()
        if out.returncode != 0:
            sys.exit(f"bench: initdb failed: {out.stderr.strip()}")
        (data / "pg_hba.conf").write_text("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
        settings = [
            f"port={PG}", "listen_addresses=127.0.0.1", f"unix_socket_directories={self.dir}",
            "unix_socket_permissions=0700",
            # Durable, as bindgate's SQLite store is: the defaults, stated.
            "fsync=on", "synchronous_commit=on", "full_page_writes=on",
        ]
        argv = [self.bindir / "postgres", "-D", data] + [a for s in settings for a in ("-c", s)]
        self.log = open(RUN / "postgres.log", "w")
        self.proc = subprocess.Popen(bench.pinned(cpu, argv), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=pg_env(), cwd=self.dir, **self.as_owner())
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"bench: postgres exited with {self.proc.returncode}; see {RUN / 'postgres.log'}")
            try:
                lines = (data / "postmaster.pid").read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) > 7 and lines[0].strip() == str(self.proc.pid) and lines[7].strip() == "ready":
                socket.create_connection(("127.0.0.1", PG), timeout=1).close()
                return
            time.sleep(0.05)
        sys.exit("bench: postgres was not ready within 30 s")

    def url(self):
        return f"postgres://{PG_ROLE}:{self.password}@127.0.0.1:{PG}/postgres"

    def pids(self):
        """The postmaster and its children (backends, WAL writer, checkpointer...)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.proc.pid] + [int(c) for c in children]

    def stop(self):
        """Fast shutdown by PID (SIGINT), SIGKILL after 15 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


def pss_kib(pids):
    """Proportional set size summed over processes: shared memory counted once overall."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def memory(target, pg=None):
    pid = target.proc.pid
    mem = {"rss_kib": bench.memory_kib(pid, "VmRSS"), "hwm_kib": bench.memory_kib(pid, "VmHWM")}
    if pg:
        mem["pg_pss_kib"] = pss_kib(pg.pids())
    return mem


# --- SQLite's group commit ---

def fd_files(pid):
    files = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            files[int(fd.name)] = os.readlink(fd)
        except OSError:
            pass
    return files


def count_syncs(pid, seconds, run_load):
    """fsync/fdatasync calls of `pid`'s threads during `run_load()`, per file. perf's tracepoints cost
    little; strace (every syscall stops the process) is the fallback, and slows the server down."""
    events = RUN / "syncs.perf"
    if shutil.which("perf"):
        probe = subprocess.run(["perf", "stat", "-e", "syscalls:sys_enter_fdatasync", "--", "true"],
                               capture_output=True, text=True)
        use_perf = probe.returncode == 0
    else:
        use_perf = False
    if use_perf:
        argv = ["perf", "record", "-q", "-e", "syscalls:sys_enter_fdatasync", "-e", "syscalls:sys_enter_fsync",
                "-p", str(pid), "-o", str(events), "--", "sleep", str(seconds + 2)]
    else:
        argv = ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-p", str(pid), "-o", str(events)]
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    row = run_load()
    if use_perf:
        tracer.wait(timeout=seconds + 30)
        script = subprocess.run(["perf", "script", "-i", str(events), "-F", "event,trace"],
                                capture_output=True, text=True, timeout=60).stdout
        fds = [int(line.split("fd:")[1].split(",")[0].strip(), 16) for line in script.splitlines() if "fd:" in line]
    else:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        fds = [int(fd) for fd in re.findall(r"f(?:data)?sync\((\d+)", events.read_text())]
    events.unlink(missing_ok=True)
    files = fd_files(pid)
    per_file = {}
    for fd in fds:
        name = Path(files.get(fd, f"fd {fd}")).name
        per_file[name] = per_file.get(name, 0) + 1
    return row, per_file, "perf record (syscall tracepoints)" if use_perf else "strace -f"


def group_commit(target):
    """One CHAINS_P99-chain SQLite row with its fsyncs counted: refreshes per WAL commit."""
    seconds = FSYNC_SECONDS
    url = URLS["bindgate-sqlite"]
    args = chain_args("bindgate-sqlite", CHAINS_P99)
    saved = bench.DURATION

    def run_load():
        bench.DURATION = seconds
        try:
            return bench.measure("bindgate-sqlite-refresh-c64-fsyncs", target, url, args)
        finally:
            bench.DURATION = saved

    row, per_file, tool = count_syncs(target.proc.pid, seconds, run_load)
    wal = sum(n for name, n in per_file.items() if name.endswith("-wal"))
    main_db = sum(n for name, n in per_file.items() if name.endswith(".db"))
    # A checkpoint syncs the WAL once and the database file once; every other WAL sync is a commit.
    commits = max(wal - main_db, 0)
    refreshes = row["ok"] if row else 0
    result = {"tool": tool, "seconds": seconds, "chains": CHAINS_P99, "per_file": per_file, "refreshes": refreshes,
              "commits": commits, "checkpoints": main_db, "rps": row["rps"] if row else None,
              "refreshes_per_commit": refreshes / commits if commits else None}
    log(f"bench: group commit: {refreshes} refreshes, syncs per file {per_file} ({tool}): "
        f"{result['refreshes_per_commit'] or 0:.1f} refreshes per commit")
    return result


# --- the report ---

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def report(result, path):
    rows, m, s = result["rows"], result["machine"], result["settings"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    by_name = {n: [r for r in rows if r["name"] == n] for n in names}
    for r in rows:
        cores = r["gw_cores"] + r["up_cores"]
        r["per_core_all"] = r["rps"] / cores if cores > 0.05 else None
    med = {n: {k: median([r[k] for r in rs]) for k in ("rps", "per_core", "per_core_all", "gw_cores", "up_cores",
                                                        "lg_cores")}
           | {q: median([r["latency"].get(q) for r in rs]) for q in ("p50", "p90", "p99")}
           | {"non2xx": sum(r["non2xx"] for r in rs), "errors": sum(r["errors"] for r in rs),
              "ended": sum(r.get("chains_ended") or 0 for r in rs)}
           for n, rs in by_name.items()}

    def ratio(a, b, key="per_core"):
        if a not in med or b not in med or not med[a][key] or not med[b][key]:
            return None, []
        per_round = []
        for ra in by_name[a]:
            rb = next((r for r in by_name[b] if r["round"] == ra["round"]), None)
            if rb and ra[key] and rb[key]:
                per_round.append(ra[key] / rb[key])
        return med[a][key] / med[b][key], per_round

    v = result["versions"]
    lines = [
        "# Refresh-token benchmark",
        "",
        f"Written by `bench/refresh.sh` ({m['date']}, bindgate {m['bindgate']}; {m['model']}, {m['cpus']} CPUs, "
        f"kernel {m['kernel']}; node {v['node']}, oidc-provider {v['oidc-provider']}, {v['postgres']}; "
        f"SQLite {v['sqlite']}). {s['rounds']} rounds of {s['duration_s']} s per row, after {s['warmup_s']} s of "
        f"unmeasured load per server and grant; refresh rows `{s['token_connections']}` or "
        f"`{s['chains_p99']}` chains (`-c64`), one keep-alive connection each; exchange rows "
        f"{s['token_connections']} connections; "
        f"{'servers on CPU 1, load generator and PostgreSQL on CPU 0' if s['pinned'] else 'nothing pinned'}. "
        "See bench/README.md for what each row does. Medians over rounds; **per core** is successful requests "
        "per second divided by the cores the server used (bindgate, or node); **with PG** also counts "
        "the PostgreSQL server's CPU.",
        "",
        "| row | per core | with PG | req/s | server cores | PG cores | loadgen cores | p50 ms | p90 ms | p99 ms "
        "| non-2xx | errors | chains ended |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        r = med[n]
        pg = "postgres" in n
        lines.append(
            f"| `{n}` | {fmt(r['per_core'])} | {fmt(r['per_core_all']) if pg else ''} | {fmt(r['rps'])} | "
            f"{fmt(r['gw_cores'], 2)} | {fmt(r['up_cores'], 2) if pg else ''} | {fmt(r['lg_cores'], 2)} | "
            f"{fmt(r['p50'], 2)} | {fmt(r['p90'], 2)} | {fmt(r['p99'], 2)} | {r['non2xx']} | {r['errors']} | "
            f"{r['ended'] if 'refresh' in n else ''} |")
    lines += ["", "| comparison | goal | median of per-core | per round |", "|---|---:|---:|---|"]
    for a, b, goal, key in (
            ("bindgate-sqlite-refresh", "oidc-provider-refresh", "1x", "per_core"),
            ("bindgate-sqlite-refresh-c64", "oidc-provider-refresh-c64", "1x", "per_core"),
            ("bindgate-postgres-refresh", "oidc-provider-refresh", "", "per_core"),
            ("bindgate-postgres-refresh-c64", "oidc-provider-refresh-c64", "", "per_core"),
            ("bindgate-postgres-refresh", "oidc-provider-refresh", "", "per_core_all"),
            ("bindgate-postgres-refresh-c64", "oidc-provider-refresh-c64", "", "per_core_all")):
        value, per_round = ratio(a, b, key)
        if value is not None:
            label = f"`{a}` / `{b}`" + (" (bindgate + PostgreSQL cores)" if key == "per_core_all" else "")
            lines.append(f"| {label} | {goal} | {value:.2f}x | {', '.join(f'{x:.2f}x' for x in per_round)} |")
    lines += ["", "Memory (KiB): resident set after start (seeded, probed), after the last row, and the peak "
              "(VmHWM). PostgreSQL's is the proportional set size (Pss) of the postmaster and all its "
              "processes, so its shared buffers count once.", "",
              "| server | at start | after the rows | peak |", "|---|---:|---:|---:|"]
    for server, mem in result["memory"].items():
        lines.append(f"| {server} | {fmt(mem['start']['rss_kib'])} | {fmt(mem['end']['rss_kib'])} | "
                     f"{fmt(mem['end']['hwm_kib'])} |")
        if "pg_pss_kib" in mem["end"]:
            lines.append(f"| PostgreSQL server (Pss) | {fmt(mem['start']['pg_pss_kib'])} | "
                         f"{fmt(mem['end']['pg_pss_kib'])} | - |")
    gc = result.get("group_commit")
    if gc:
        per_file = ", ".join(f"`{name}` {n:,}" for name, n in sorted(gc["per_file"].items()))
        lines += ["", f"SQLite's group commit: a `{gc['chains']}`-chain refresh row of {gc['seconds']} s on the "
                  f"SQLite store, its fsync and fdatasync calls counted with {gc['tool']}: {per_file or 'none'}. "
                  f"{gc['refreshes']:,} refreshes ({fmt(gc['rps'])}/s), {gc['commits']:,} WAL commits "
                  f"(WAL syncs less the {gc['checkpoints']} checkpoints' database syncs): "
                  f"**{fmt(gc['refreshes_per_commit'], 1)} refreshes per commit**."]
    lines += ["", "What each server answered (checked before the rows: a DPoP-bound `at+jwt` and a new refresh "
              "token; then a rotated-away token presented again is refused and its family revoked):", "",
              "| server | grant | token_type | alg | typ | cnf | claims | bytes | refresh token chars | reuse answer |",
              "|---|---|---|---|---|---|---|---:|---:|---|"]
    for key, t in result["issued"].items():
        server, grant = key.split("/")
        reuse = result["reuse"].get(server, "") if grant == "refresh" else ""
        lines.append(f"| {server} | {grant} | {t['token_type']} | {t['alg']} | {t['typ']} | {', '.join(t['cnf'])} | "
                     f"{' '.join(t['claims'])} | {t['bytes']} | {t['refresh_token_bytes']} | {reuse} |")
    path.write_text("\n".join(lines) + "\n")
    log(f"bench: wrote {path.relative_to(ROOT)}")


def versions(pg):
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    package = json.loads((AS_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
    postgres = subprocess.run([str(pg.bindir / "postgres"), "--version"], capture_output=True, text=True)
    return {"node": node, "oidc-provider": package["version"], "postgres": postgres.stdout.strip(),
            "sqlite": sqlite_version()}


def sqlite_version():
    """The SQLite bundled into bindgate (rusqlite's libsqlite3-sys), from Cargo.lock."""
    lock = (ROOT / "Cargo.lock").read_text().split("[[package]]")
    for package in lock:
        if 'name = "libsqlite3-sys"' in package:
            return "libsqlite3-sys " + package.split('version = "')[1].split('"')[0] + " (bundled)"
    return "?"


def write_config(tmp, name, port, store):
    text = (AS_DIR / "refresh.toml").read_text()
    text = text.replace("@PKI@", str(PKI)).replace("@PORT@", str(port)).replace("@STORE@", store)
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def main():
    RUN.mkdir(exist_ok=True)
    if ONLY - set(PLAN_NAMES):
        sys.exit(f"bench: unknown rows in ONLY: {' '.join(sorted(ONLY - set(PLAN_NAMES)))}")
    selected = [n for n in PLAN_NAMES if not ONLY or n in ONLY]
    warm = WARMUP * 5
    log(f"bench: {len(selected)} rows x {DURATION}s x {ROUNDS} rounds + {warm}s of warm-up + "
        f"{FSYNC_SECONDS}s of group-commit row = {len(selected) * DURATION * ROUNDS + warm + FSYNC_SECONDS}s of load")
    for port in (BG_SQLITE, BG_POSTGRES, OP, PG):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            sys.exit(f"bench: something already listens on 127.0.0.1:{port}")
        except OSError:
            pass
    bench.prepare_pki()
    # The dev identity provider's id_token every exchange presents (subject tokens are not single-use).
    mint = [BINDGATE, "mint", "--id-token", "--key", PKI / "idp-key.pem", "--iss", IDP, "--aud", CLIENT_ID,
            "--sub", "bench-user", "--ttl", "24h"]
    (RUN / "refresh-id-token.jwt").write_text(bench.run(mint, capture_output=True, text=True).stdout.strip())
    for server in URLS:
        chains_file(server).unlink(missing_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="bindgate-refresh-"))
    pg = Postgres()
    try:
        log(f"bench: temp dir {tmp} (SQLite store), PostgreSQL cluster in {pg.dir}")
        pg.start(cpu=CPU_LOAD)
        sqlite_conf = write_config(tmp, "bindgate-sqlite", BG_SQLITE, "sqlite:as.db")
        postgres_conf = write_config(tmp, "bindgate-postgres", BG_POSTGRES, pg.url())
        procs = {
            "bindgate-sqlite": bench.spawn("bindgate-sqlite", [BINDGATE, "run", "--config", sqlite_conf],
                                           env=bench.BINDGATE_ENV, cpu=CPU_GATEWAY),
            "bindgate-postgres": bench.spawn("bindgate-postgres", [BINDGATE, "run", "--config", postgres_conf],
                                             env=bench.BINDGATE_ENV, cpu=CPU_GATEWAY),
            "oidc-provider": bench.spawn("oidc-provider-refresh", [
                "node", AS_DIR / "oidc-provider.mjs", PKI, OP, chains_file("oidc-provider"), SEEDS],
                env={"NODE_ENV": "production"}, cpu=CPU_GATEWAY),
        }
        for server, port in (("bindgate-sqlite", BG_SQLITE), ("bindgate-postgres", BG_POSTGRES), ("oidc-provider", OP)):
            bench.wait_port(port, procs[server], seconds=60)
        targets = {name: bench.Target(name, proc) for name, proc in procs.items()}
        pg_target = bench.Target("postgres", pg.proc, with_children=True)
        result = run_rounds(targets, pg_target, pg, selected)
        result["versions"] = versions(pg)
        out = RUN / f"results-refresh-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2))
        log(f"bench: raw results in {out.relative_to(ROOT)}")
        report(result, BENCH / "RESULTS-REFRESH.md")
    finally:
        bench.stop_all()
        pg.stop()
        if not KEEP:
            shutil.rmtree(tmp, ignore_errors=True)


def run_rounds(targets, pg_target, pg, selected):
    log(f"bench: seeding {SEEDS} refresh chains per server (bindgate: token exchanges; oidc-provider: at startup)")
    for server in ("bindgate-sqlite", "bindgate-postgres"):
        seed_bindgate(server, SEEDS)
    if count_lines(chains_file("oidc-provider")) < SEEDS:
        sys.exit("bench: oidc-provider did not write its seeded refresh tokens")

    log("bench: one request of each kind, and reuse")
    issued = {f"{server}/refresh": probe_refresh(server) for server in URLS}
    issued |= {f"{server}/exchange": probe_exchange(server) for server in ("bindgate-sqlite", "bindgate-postgres")}
    reuse = {server: reuse_check(server) for server in URLS}
    memory_start = {name: memory(t, pg if name == "bindgate-postgres" else None) for name, t in targets.items()}

    plan = []
    for suffix, conns in (("refresh", TOKEN_CONNS), ("refresh-c64", CHAINS_P99)):
        for server in URLS:
            plan.append((f"{server}-{suffix}", server, chain_args(server, conns), conns))
    for server in ("bindgate-sqlite", "bindgate-postgres"):
        plan.append((f"{server}-exchange", server, exchange_args(TOKEN_CONNS), 0))
    plan = [p for p in plan if p[0] in selected]

    if WARMUP > 0:
        log(f"bench: warming up, {WARMUP}s per server and grant")
        for server in URLS:
            bench.loadgen(chain_args(server, TOKEN_CONNS) + ["--duration", f"{WARMUP}s", URLS[server]])
        for server in ("bindgate-sqlite", "bindgate-postgres"):
            bench.loadgen(exchange_args(TOKEN_CONNS) + ["--duration", f"{WARMUP}s", URLS[server]])

    rows = []
    for round_no in range(1, ROUNDS + 1):
        log(f"bench: round {round_no} of {ROUNDS}")
        for name, server, args, chains in plan:
            have = count_lines(chains_file(server))
            if chains and have < chains:
                if server == "oidc-provider":
                    sys.exit(f"bench: oidc-provider has {have} live chains left, {chains} needed (raise SEEDS)")
                seed_bindgate(server, chains - have)
            upstream = pg_target if "postgres" in server else None
            row = bench.measure(name, targets[server], URLS[server], args, upstream=upstream)
            if row:
                row["round"] = round_no
                rows.append(row)
                time.sleep(0.5)
    memory_end = {name: memory(t, pg if name == "bindgate-postgres" else None) for name, t in targets.items()}
    gc = None
    if FSYNC_SECONDS > 0:
        have = count_lines(chains_file("bindgate-sqlite"))
        if have < CHAINS_P99:
            seed_bindgate("bindgate-sqlite", CHAINS_P99 - have)
        gc = group_commit(targets["bindgate-sqlite"])
    names = {"bindgate-sqlite": "bindgate (SQLite)", "bindgate-postgres": "bindgate (PostgreSQL)",
             "oidc-provider": "oidc-provider"}
    return {
        "machine": bench.machine(),
        "settings": {"duration_s": DURATION, "rounds": ROUNDS, "warmup_s": WARMUP, "token_connections": TOKEN_CONNS,
                     "chains_p99": CHAINS_P99, "seeds": SEEDS, "pinned": bench.PIN},
        "issued": issued, "reuse": reuse, "rows": rows, "group_commit": gc,
        "memory": {names[n]: {"start": memory_start[n], "end": memory_end[n]} for n in targets},
    }


if __name__ == "__main__":
    main()
