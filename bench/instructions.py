#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: the same comparisons as
run.py, in a unit that does not drift with the machine's speed.

Each gateway runs under `valgrind --tool=callgrind`; after a warm-up the
counters are zeroed, REQUESTS keep-alive requests are sent (16 connections, so 16 handshakes
are included; the h2 rows with 4 streams on each), and the dump is
divided by REQUESTS. `ONLY` (row names) runs some rows. What
this leaves out: kernel time (syscalls, loopback TCP) and cache misses. It
also runs each program on valgrind's virtual CPU, which offers neither
SHA-NI nor ADX: bindgate's SHA-256 of the token (the cache key) runs in
software here, about 27k instructions per request that SHA-NI makes about
1.4k natively (about 170 per 64-byte block in the disassembly of sha2's
`x86_sha::compress`, 8 blocks for the bench's token), and both gateways'
P-256 code takes its slower generic path.
Started by bench/instructions.sh after the same setup as bench/run.sh;
writes bench/INSTRUCTIONS.md.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the PKI, ports and process helpers of run.py)

REQUESTS = int(os.environ.get("REQUESTS", "5000"))
WARMUP = 500


H2 = ["--http2", "--streams", "4"]
# Space-separated row names; empty: every row.
ONLY = set(os.environ.get("ONLY", "").split())


def loadgen(url, extra, count):
    args = ["--connections", "16", "--threads", "1"] + extra + ["--duration", "600s", "--max-requests", count, url]
    summary, _ = bench.loadgen(args, cpu=None, timeout=900)
    if summary.get("ok") != count:
        sys.exit(f"instructions: {summary.get('ok')} of {count} requests succeeded on {url}: {summary}")


def total_instructions(dump):
    for line in dump.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    sys.exit(f"instructions: no totals in {dump}")


def software_sha256(dump):
    """Instructions spent in sha2's portable SHA-256, which bindgate runs
    only because valgrind's CPU lacks SHA-NI."""
    listing = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", str(dump)],
                             check=True, capture_output=True, text=True).stdout
    return sum(int(line.split()[0].replace(",", "")) for line in listing.splitlines()
               if "sha256::soft::compress" in line and line.strip()[:1].isdigit())


def count(name, argv, env, port, url, extra):
    out = bench.RUN / f"callgrind-{name}.out"
    for old in bench.RUN.glob(f"callgrind-{name}.out*"):
        old.unlink()
    proc = bench.spawn(f"callgrind-{name}", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                       env=env)
    bench.wait_port(port, proc, seconds=120)
    loadgen(url, extra, WARMUP)
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    loadgen(url, extra, REQUESTS)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    time.sleep(0.5)
    proc.terminate()
    proc.wait(timeout=60)
    dump = Path(f"{out}.1")
    per_request = total_instructions(dump) / REQUESTS
    bench.log(f"  {name:24} {per_request:10,.0f} instructions per request")
    return per_request, software_sha256(dump) / REQUESTS


def main():
    bench.RUN.mkdir(exist_ok=True)
    bench.prepare_pki()
    token = (bench.PKI / "token-a.jwt").read_text().strip()
    bench.start_nginx()
    hap, hap_env = bench.HAPROXY_ARGV, bench.haproxy_env(1000, 1)
    bg, bg_env = bench.BINDGATE_ARGV, bench.BINDGATE_ENV
    tls, auth = bench.tls_args(), ["--token", token]
    bench.log(f"instructions: {REQUESTS} keep-alive requests per row under callgrind")
    plan = [
        ("haproxy-mtls-h1", hap, hap_env, bench.HAP_MTLS, bench.HAP_MTLS_URL, tls),
        ("bindgate-mtls-h1", bg, bg_env, bench.BG, bench.BG_MTLS_URL, tls),
        # The same token header as the all-checks row, on the route that checks
        # nothing: what receiving it costs, so that the difference is the checks.
        ("bindgate-mtls-h1-token", bg, bg_env, bench.BG, bench.BG_MTLS_URL, tls + auth),
        ("haproxy-full-h1", hap, hap_env, bench.HAP_FULL, bench.HAP_FULL_URL, tls + auth),
        ("bindgate-full-h1", bg, bg_env, bench.BG, bench.BG_FULL_URL, tls + auth),
        ("haproxy-mtls-h2", hap, hap_env, bench.HAP_MTLS, bench.HAP_MTLS_URL, H2 + tls),
        ("bindgate-mtls-h2", bg, bg_env, bench.BG, bench.BG_MTLS_URL, H2 + tls),
        ("bindgate-full-h2", bg, bg_env, bench.BG, bench.BG_FULL_URL, H2 + tls + auth),
    ]
    counted = {name: count(name, argv, env, port, url, extra)
               for name, argv, env, port, url, extra in plan if not ONLY or name in ONLY}
    rows = [(name, value) for name, (value, _) in counted.items()]
    baseline = next((value for name, value in rows if name == "haproxy-mtls-h1"), rows[0][1])
    machine = bench.machine()
    lines = [
        "# Instructions per request",
        "",
        "Generated by `bench/instructions.sh` (see `bench/README.md`): callgrind's count of the",
        f"instructions each gateway ran for {REQUESTS:,} keep-alive requests (16 connections,",
        "their handshakes included; h2: 4 streams each), after a warm-up. Unlike",
        "requests per second, these do not drift with the machine's speed, but they leave out",
        "kernel time and cache misses, and valgrind's virtual CPU has neither SHA-NI nor ADX",
        "(bindgate's SHA-256 of the token, its cache key, runs in software here: about 27k",
        "of its instructions per request, about 1.4k natively).",
        "",
        f"- machine: {machine['cpus']} vCPU {machine['model']}, Linux {machine['kernel']}",
        f"- peers: {machine['haproxy']}; {machine['openssl']}; bindgate {machine['bindgate']} "
        f"built with {machine['rustc']}; valgrind's callgrind",
        f"- date: {machine['date']}",
        "",
        "| row | instructions per request | vs HAProxy mTLS only |",
        "|---|---:|---:|",
    ]
    for name, value in rows:
        lines.append(f"| {name} | {value:,.0f} | {value / baseline:.2f}x |")
    lines.append("")
    lines += checks_alone(counted, len(token))
    (bench.BENCH / "INSTRUCTIONS.md").write_text("\n".join(lines))
    bench.log("instructions: wrote bench/INSTRUCTIONS.md")


def checks_alone(counted, token_length):
    """The issue's goal: the token checks cost at most 10% of bindgate's own
    mTLS-only path. The checks alone are the all-checks row less the
    mTLS-only row carrying the same header (its decryption and parsing are
    the cost of receiving a token, not of checking it), less the SHA-256
    valgrind makes bindgate run in software."""
    needed = ("bindgate-mtls-h1", "bindgate-mtls-h1-token", "bindgate-full-h1")
    if not all(name in counted for name in needed):
        return []
    mtls, carried, full = (counted[name] for name in needed)
    checks = full[0] - carried[0]
    soft = full[1] - carried[1]
    blocks = sha256_blocks(token_length)
    native = checks - soft + SHA_NI_PER_BLOCK * blocks
    return [
        f"The token checks alone on h1 (bindgate-full-h1 less bindgate-mtls-h1-token): {checks:,.0f}",
        f"instructions, {soft:,.0f} of them the token's SHA-256 in software. With SHA-NI's",
        f"~{SHA_NI_PER_BLOCK} per block in their place ({blocks} blocks), about {native:,.0f}: "
        f"{native / mtls[0]:.1%} of",
        f"bindgate's mTLS-only path ({mtls[0]:,.0f}), against the goal of 10%. Receiving the header",
        f"(bindgate-mtls-h1-token less bindgate-mtls-h1) costs {carried[0] - mtls[0]:,.0f} more.",
        "",
    ]


# Instructions per 64-byte block of sha2 0.10's SHA-NI `x86_sha::compress`,
# counted in its disassembly (`objdump -d`): valgrind cannot run it.
SHA_NI_PER_BLOCK = 171


def sha256_blocks(length):
    """64-byte blocks SHA-256 compresses for a message of `length` bytes."""
    return (length + 9 + 63) // 64


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
