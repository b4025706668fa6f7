#!/usr/bin/env python3
"""Authorization server benchmark: bindgate's token endpoint beside panva's
oidc-provider, and the gateway verifying EdDSA tokens beside ES256 ones.

Started by bench/as.sh, which installs and builds what this needs. Shares
run.py's helpers, layout and knobs: the server under test pinned to CPU 1,
the load generator (and nginx) to CPU 0; every comparison per server core
(successful requests per second divided by the CPU the server used).

Rows (each round runs them all, the pairs back to back; the report takes
medians over rounds):

  bindgate-token-mtls, oidc-provider-token-mtls
      POST /token, client_credentials, tls_client_auth; the token is bound
      to the client certificate (cnf."x5t#S256"), token_type Bearer.
  bindgate-token-dpop, oidc-provider-token-dpop
      the same with a fresh DPoP proof (ES256) in every request; the token
      is bound to the proof's key (cnf.jkt), token_type DPoP.
  bindgate-full-distinct, bindgate-full-distinct-eddsa
      the gateway with all checks, every request a token never sent before
      (so its token cache cannot help): ES256 tokens signed by the dev
      issuer key, then EdDSA tokens signed by the authorization server's key.

Environment knobs (run.py's): DURATION (seconds per row, default 5), ROUNDS
(3), ONLY (space-separated row names), PIN (1); and TOKEN_CONNS
(connections of the token rows, default 16), WARMUP (seconds of unmeasured
load per token server and mode before the first round, 3), CONNS (those of
the gateway rows, 64), DISTINCT_TOKENS (per round and algorithm, 30,000 per
second of DURATION).
"""

import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the shared helpers and knobs)
from run import BENCH, BINDGATE, CPU_GATEWAY, CPU_LOAD, DURATION, LOADGEN, ONLY, PKI, ROOT, ROUNDS, RUN, log  # noqa: E402

AS_DIR = BENCH / "as"
BG_AS, OP_AS, GW = 18463, 18465, 18473
BG_TOKEN_URL = f"https://localhost:{BG_AS}/token"
OP_TOKEN_URL = f"https://localhost:{OP_AS}/token"
GW_URL = f"https://127.0.0.1:{GW}/"
TOKEN_CONNS = int(os.environ.get("TOKEN_CONNS", "16"))
# Unmeasured load on each token server and mode before the first round: V8
# compiles oidc-provider's hot paths over the first seconds (a 2 s row of a
# cold node measured half of what a warm one does).
WARMUP = int(os.environ.get("WARMUP", "3"))
CONNS = bench.CONNS
SCOPE = "orders:read"
# oidc-provider binds a token to the certificate or to a DPoP key, never both:
# its DPoP row asks as a second registration of the same certificate
# (see as/oidc-provider.mjs). bindgate's one client allows both bindings.
FORMS = {
    ("bindgate", "mtls"): f"grant_type=client_credentials&client_id=client-a&scope={SCOPE}",
    ("bindgate", "dpop"): f"grant_type=client_credentials&client_id=client-a&scope={SCOPE}",
    ("oidc-provider", "mtls"): f"grant_type=client_credentials&client_id=client-a&scope={SCOPE}",
    ("oidc-provider", "dpop"): f"grant_type=client_credentials&client_id=client-a-dpop&scope={SCOPE}",
}
URLS = {"bindgate": BG_TOKEN_URL, "oidc-provider": OP_TOKEN_URL}


def token_args(server, mode, connections=TOKEN_CONNS):
    args = ["--connections", connections, "--threads", 1] + bench.tls_args() + ["--post-form", FORMS[server, mode]]
    if mode == "dpop":
        args += ["--dpop-key", PKI / "dpop-key.pem"]
    return args


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def probe(server, mode):
    """One token request: checks the answer and describes the token issued."""
    argv = [LOADGEN] + token_args(server, mode, 1) + ["--max-requests", 1, "--sample-body", URLS[server]]
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)
    summary = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    body = summary.get("sample_body")
    if not body:
        sys.exit(f"bench: {server} refused the {mode} token request: "
                 f"{summary.get('sample_failure') or summary.get('error_kinds') or out.stderr.strip()}")
    answer = json.loads(body)
    header, claims = (b64json(p) for p in answer["access_token"].split(".")[:2])
    expected = {"mtls": "Bearer", "dpop": "DPoP"}[mode]
    if answer.get("token_type") != expected:
        sys.exit(f"bench: {server} answered token_type {answer.get('token_type')!r} to the {mode} request")
    if mode == "dpop" and "jkt" not in claims.get("cnf", {}):
        sys.exit(f"bench: {server}'s DPoP token is not bound to the proof's key: cnf {claims.get('cnf')}")
    if mode == "mtls" and "x5t#S256" not in claims.get("cnf", {}):
        sys.exit(f"bench: {server}'s token is not bound to the certificate: cnf {claims.get('cnf')}")
    issued = {
        "token_type": answer["token_type"], "expires_in": answer.get("expires_in"), "scope": answer.get("scope"),
        "alg": header.get("alg"), "typ": header.get("typ"), "kid": header.get("kid"),
        "cnf": sorted(claims.get("cnf", {})), "claims": sorted(claims), "bytes": len(answer["access_token"]),
    }
    log(f"  {server:14} {mode}: {issued['token_type']} {issued['alg']} {issued['typ']}, cnf {issued['cnf']}, "
        f"claims {' '.join(issued['claims'])}, {issued['bytes']} bytes")
    return issued


def fetch_jwks(port):
    context = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    with urllib.request.urlopen(f"https://localhost:{port}/jwks", context=context, timeout=5) as response:
        return json.load(response)


def mint_distinct(key, count, name):
    path = PKI / f"{name}.txt"
    mint = [BINDGATE, "mint", "--key", key, "--cert", PKI / "client-a.pem", "--iss", bench.ISS, "--aud", bench.AUD,
            "--ttl", "24h", "--count", count]
    started = time.time()
    with open(path, "w") as out:
        bench.run(mint, stdout=out)
    log(f"bench: minted {count} distinct tokens ({key.name}) in {time.time() - started:.1f}s")
    return path


def rss(target):
    pid = target.proc.pid
    return {"rss_kib": bench.memory_kib(pid, "VmRSS"), "hwm_kib": bench.memory_kib(pid, "VmHWM")}


def versions():
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    package = json.loads((AS_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
    return {"node": node, "oidc-provider": package["version"]}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def report(result, path):
    rows, m, s = result["rows"], result["machine"], result["settings"]
    names = [n for n in dict.fromkeys(r["name"] for r in rows)]
    by_name = {n: [r for r in rows if r["name"] == n] for n in names}
    med = {n: {k: median([r[k] for r in rs]) for k in ("rps", "per_core", "gw_cores", "lg_cores")}
           | {"p50": median([r["latency"].get("p50") for r in rs]), "p99": median([r["latency"].get("p99") for r in rs]),
              "non2xx": sum(r["non2xx"] for r in rs), "errors": sum(r["errors"] for r in rs), "rounds": len(rs)}
           for n, rs in by_name.items()}

    def ratio(a, b):
        if a not in med or b not in med or not med[a]["per_core"] or not med[b]["per_core"]:
            return None, []
        per_round = []
        for ra in by_name[a]:
            rb = next((r for r in by_name[b] if r["round"] == ra["round"]), None)
            if rb and ra["per_core"] and rb["per_core"]:
                per_round.append(ra["per_core"] / rb["per_core"])
        return med[a]["per_core"] / med[b]["per_core"], per_round

    lines = [
        "# Authorization server benchmark",
        "",
        f"Written by `bench/as.sh` ({m['date']}, bindgate {m['bindgate']}; {m['model']}, {m['cpus']} CPUs, "
        f"kernel {m['kernel']}; node {result['versions']['node']}, oidc-provider {result['versions']['oidc-provider']}). "
        f"{s['rounds']} rounds of {s['duration_s']} s per row, after {s['warmup_s']} s of unmeasured load on each "
        f"token server and mode; token rows {s['token_connections']} keep-alive "
        f"connections, gateway rows {s['connections']}; {'server on CPU 1, load generator on CPU 0' if s['pinned'] else 'nothing pinned'}. "
        "See bench/README.md for what each row does. Medians over rounds; **per core** is successful requests "
        "per second divided by the cores the server used.",
        "",
        "| row | per core | req/s | server cores | loadgen cores | p50 ms | p99 ms | non-2xx | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        r = med[n]
        lines.append(f"| `{n}` | {fmt(r['per_core'])} | {fmt(r['rps'])} | {fmt(r['gw_cores'], 2)} | "
                     f"{fmt(r['lg_cores'], 2)} | {fmt(r['p50'], 2)} | {fmt(r['p99'], 2)} | {r['non2xx']} | {r['errors']} |")
    lines += ["", "| comparison | goal | median of per-core | per round |", "|---|---:|---:|---|"]
    for a, b, goal in (("bindgate-token-mtls", "oidc-provider-token-mtls", "5x"),
                       ("bindgate-token-dpop", "oidc-provider-token-dpop", "5x"),
                       ("bindgate-full-distinct-eddsa", "bindgate-full-distinct", "2x")):
        value, per_round = ratio(a, b)
        if value is not None:
            lines.append(f"| `{a}` / `{b}` | {goal} | {value:.2f}x | {', '.join(f'{x:.2f}x' for x in per_round)} |")
    lines += ["", "Memory of each server (KiB): resident after start and one token request, after the last row, "
              "and the peak (VmHWM).", "", "| server | at start | after the rows | peak |", "|---|---:|---:|---:|"]
    for server, mem in result["memory"].items():
        lines.append(f"| {server} | {fmt(mem['start']['rss_kib'])} | {fmt(mem['end']['rss_kib'])} | "
                     f"{fmt(mem['end']['hwm_kib'])} |")
    lines += ["", "The tokens each authorization server issued (checked before the rows):", "",
              "| server | request | token_type | alg | typ | cnf | claims | bytes |", "|---|---|---|---|---|---|---|---:|"]
    for key, t in result["issued"].items():
        server, mode = key.split("/")
        lines.append(f"| {server} | {mode} | {t['token_type']} | {t['alg']} | {t['typ']} | {', '.join(t['cnf'])} | "
                     f"{' '.join(t['claims'])} | {t['bytes']} |")
    path.write_text("\n".join(lines) + "\n")
    log(f"bench: wrote {path.relative_to(ROOT)}")


def main():
    RUN.mkdir(exist_ok=True)
    plan_names = {"bindgate-token-mtls", "oidc-provider-token-mtls", "bindgate-token-dpop", "oidc-provider-token-dpop",
                  "bindgate-full-distinct", "bindgate-full-distinct-eddsa"}
    if ONLY - plan_names:
        sys.exit(f"bench: unknown rows in ONLY: {' '.join(sorted(ONLY - plan_names))}")
    selected = ONLY or plan_names
    warmup_s = WARMUP * len([n for n in selected if "-token-" in n])
    log(f"bench: {len(selected)} rows x {DURATION}s x {ROUNDS} rounds + {warmup_s}s of warm-up = "
        f"{len(selected) * DURATION * ROUNDS + warmup_s}s of load")

    for port in (BG_AS, OP_AS, GW, bench.NGINX):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            sys.exit(f"bench: something already listens on 127.0.0.1:{port}")
        except OSError:
            pass
    bench.prepare_pki()
    (RUN / "as.db").unlink(missing_ok=True)
    nginx = bench.start_nginx(cpu=CPU_LOAD)
    bg_as = bench.spawn("bindgate-as", [BINDGATE, "run", "--config", AS_DIR / "bindgate.toml"],
                        env=bench.BINDGATE_ENV, cpu=CPU_GATEWAY)
    op_as = bench.spawn("oidc-provider", ["node", AS_DIR / "oidc-provider.mjs", PKI, OP_AS],
                        env={"NODE_ENV": "production"}, cpu=CPU_GATEWAY)
    bench.wait_port(BG_AS, bg_as)
    bench.wait_port(OP_AS, op_as)

    # The gateway trusts the dev issuer's ES256 key and the authorization server's published Ed25519 key.
    es256 = json.loads((PKI / "jwks.json").read_text())["keys"]
    eddsa = fetch_jwks(BG_AS)["keys"]
    (PKI / "jwks-es256-eddsa.json").write_text(json.dumps({"keys": es256 + eddsa}, indent=2))
    gateway = bench.spawn("bindgate-gateway", [BINDGATE, "run", "--config", AS_DIR / "gateway.toml"],
                          env=bench.BINDGATE_ENV, cpu=CPU_GATEWAY)
    bench.wait_port(GW, gateway)
    targets = {"bindgate": bench.Target("bindgate", bg_as), "oidc-provider": bench.Target("oidc-provider", op_as)}
    gw, up = bench.Target("bindgate-gateway", gateway), bench.Target("nginx", nginx, True)

    log("bench: one token request of each kind")
    issued = {f"{server}/{mode}": probe(server, mode) for mode in ("mtls", "dpop") for server in targets}
    memory = {name: {"start": rss(t)} for name, t in [*targets.items(), ("bindgate gateway", gw)]}

    # Fresh files every round (no token may reach the gateway twice), minted
    # between rows and deleted after the round: they hold about 100 MB each.
    with_distinct = not ONLY or bool(ONLY & {"bindgate-full-distinct", "bindgate-full-distinct-eddsa"})
    count = int(os.environ.get("DISTINCT_TOKENS", str(30000 * DURATION)))

    h1 = ["--connections", CONNS, "--threads", 1] + bench.tls_args()
    plan = [
        ("bindgate-token-mtls", targets["bindgate"], BG_TOKEN_URL, token_args("bindgate", "mtls"), None),
        ("oidc-provider-token-mtls", targets["oidc-provider"], OP_TOKEN_URL, token_args("oidc-provider", "mtls"), None),
        ("bindgate-token-dpop", targets["bindgate"], BG_TOKEN_URL, token_args("bindgate", "dpop"), None),
        ("oidc-provider-token-dpop", targets["oidc-provider"], OP_TOKEN_URL, token_args("oidc-provider", "dpop"), None),
    ]
    if with_distinct:
        plan += [
            ("bindgate-full-distinct", gw, GW_URL, h1 + ["--tokens", "{es256}"], up),
            ("bindgate-full-distinct-eddsa", gw, GW_URL, h1 + ["--tokens", "{eddsa}"], up),
        ]
    warm = [(url, args) for name, _, url, args, _ in plan[:4] if not ONLY or name in ONLY]
    if WARMUP > 0 and warm:
        log(f"bench: warming up the token endpoints, {WARMUP}s each")
        for url, args in warm:
            bench.loadgen(args + ["--duration", f"{WARMUP}s", url])
    rows = []
    log(f"bench: {DURATION}s per row; token rows {TOKEN_CONNS} connections, gateway rows {CONNS}")
    for round_no in range(1, ROUNDS + 1):
        log(f"bench: round {round_no} of {ROUNDS}")
        distinct = {}
        for alg, key, row in (("es256", "issuer-key.pem", "bindgate-full-distinct"),
                              ("eddsa", "as-signing-key.pem", "bindgate-full-distinct-eddsa")):
            if with_distinct and (not ONLY or row in ONLY):
                distinct[alg, round_no] = mint_distinct(PKI / key, count, f"distinct-{alg}")
        for name, target, url, args, upstream in plan:
            args = [distinct["es256", round_no] if a == "{es256}" else
                    distinct["eddsa", round_no] if a == "{eddsa}" else a for a in args]
            row = bench.measure(name, target, url, args, upstream=upstream)
            if row:
                row["round"] = round_no
                rows.append(row)
                time.sleep(0.5)
        for path in distinct.values():
            path.unlink()
    for name, t in [*targets.items(), ("bindgate gateway", gw)]:
        memory[name]["end"] = rss(t)

    machine = bench.machine()
    result = {"machine": machine, "versions": versions(), "settings": {
        "duration_s": DURATION, "rounds": ROUNDS, "warmup_s": WARMUP, "token_connections": TOKEN_CONNS,
        "connections": CONNS,
        "pinned": bench.PIN}, "issued": issued, "rows": rows, "memory": memory}
    out = RUN / f"results-as-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    log(f"bench: raw results in {out.relative_to(ROOT)}")
    report(result, BENCH / "RESULTS-AS.md")


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
