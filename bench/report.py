#!/usr/bin/env python3
"""report.py RESULTS.json RESULTS.md [RESULTS.svg]: the benchmark table with
ratios to HAProxy, and a chart of the same comparisons (by default RESULTS.svg
beside RESULTS.md). Standard library only."""

import json
import math
import os
import re
import statistics
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

# The two-core row (run.py): a second bindgate on two CPUs, the load generator unpinned.
TWO_CORES, ONE_CORE = "bindgate-full-h1-2cores", "bindgate-full-h1"

# Each bindgate row and the HAProxy row it is compared with. The two-core
# row is compared per core with HAProxy's one-thread row: per core is the
# figure that compares gateways, whatever the cores they used.
PEERS = {
    "bindgate-mtls-h1": "haproxy-mtls-h1",
    "bindgate-full-h1": "haproxy-full-h1",
    TWO_CORES: "haproxy-full-h1",
    "bindgate-mtls-h2": "haproxy-mtls-h2",
    "bindgate-full-h2": "haproxy-full-h2",
    "bindgate-full-newconn-resumed": "haproxy-full-newconn-resumed",
    "bindgate-full-newconn-full": "haproxy-full-newconn-full",
    "bindgate-full-distinct": "haproxy-full-distinct",
}

# The goals of the current performance issue: (goal, bindgate row, the row or
# gateway it is compared with, target, kind). Kinds:
#   per_core  median over rounds of the per-core ratio, each round's pair back to back: >= target
#   p99       bindgate's p99 (median over rounds) no higher than the other's
#   idle      RSS growth per idle (parked) connection, bindgate / HAProxy: <= target
#   scaling   median over rounds of raw req/s, two-core row / one-core row: >= target
GOALS = [
    ("keep-alive h1, all checks, vs HAProxy mTLS only: >= 1.0x",
     "bindgate-full-h1", "haproxy-mtls-h1", 1.0, "per_core"),
    ("keep-alive h2, all checks, vs HAProxy mTLS only (h2): >= 1.0x",
     "bindgate-full-h2", "haproxy-mtls-h2", 1.0, "per_core"),
    ("keep-alive h1, all checks, vs HAProxy all checks: >= 5x",
     "bindgate-full-h1", "haproxy-full-h1", 5.0, "per_core"),
    ("new TLS connection per request (full handshakes), vs HAProxy: >= 3x",
     "bindgate-full-newconn-full", "haproxy-full-newconn-full", 3.0, "per_core"),
    ("distinct tokens (ES256), vs HAProxy: >= 1.3x",
     "bindgate-full-distinct", "haproxy-full-distinct", 1.3, "per_core"),
    ("p99, keep-alive h1: below HAProxy's",
     "bindgate-full-h1", "haproxy-full-h1", 1.0, "p99"),
    ("idle memory per parked connection: <= 0.7x HAProxy",
     "bindgate", "haproxy", 0.7, "idle"),
    ("two cores (two worker threads, load from a third process) vs one core: >= 1.8x",
     TWO_CORES, ONE_CORE, 1.8, "scaling"),
]


def goal_ratio(r, met):
    """A ratio to two decimals, or three where two would round it onto its goal
    (0.998 is not 1.00x, and a missed goal must not read as met)."""
    if not isinstance(r, (int, float)):
        return "-"
    two = format(r, ".2f")
    return format(r, ".3f") if two in ("1.00", "5.00", "3.00", "1.30", "1.80", "0.70") and met is not True else two


def fmt(value, spec=",.0f"):
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def aggregate(raw):
    """Rows of the same name over rounds: medians, and every round's per-core figure."""
    by_name = defaultdict(list)
    for r in raw:
        by_name[r["name"]].append(r)
    med = lambda values: statistics.median(values) if values else None
    out = {}
    for name, runs in by_name.items():
        per_core = [r["per_core"] for r in runs if r["per_core"]]
        out[name] = {
            "name": name,
            "rps": med([r["rps"] for r in runs]),
            "gw_cores": med([r["gw_cores"] for r in runs]),
            "up_cores": med([r.get("up_cores", 0.0) for r in runs]),
            "lg_cores": med([r["lg_cores"] for r in runs]),
            "per_core": med(per_core),
            "per_core_all": per_core,
            "latency": {q: med([r["latency"][q] for r in runs if q in r["latency"]])
                        for q in ("p50", "p99", "p999")},
            "handshakes_per_s": med([r["handshakes_per_s"] for r in runs]),
            "non2xx": sum(r["non2xx"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "by_round": {r.get("round", 1): r for r in runs},
        }
    return out


def round_ratios(rows, ours, theirs, field="per_core"):
    """Each round's ratio of `field`, the two rows of a round measured back to back."""
    a, b = rows.get(ours), rows.get(theirs)
    if not a or not b:
        return []
    return [a["by_round"][k][field] / b["by_round"][k][field]
            for k in sorted(a["by_round"]) if k in b["by_round"]
            and a["by_round"][k][field] and b["by_round"][k][field]]


def ratio(rows, ours, theirs, field="per_core"):
    """Median over rounds of the per-round ratio (per core unless told)."""
    pairs = round_ratios(rows, ours, theirs, field)
    return statistics.median(pairs) if pairs else None


def idle_by_gateway(data):
    return {i["name"].split("-")[0]: i for i in data.get("idle", [])}


def goal_outcome(data, rows, goal):
    """(bindgate's figure, the other's, ratio, met) of one goal, as text; None when not measured."""
    _, ours, theirs, target, kind = goal
    if kind == "idle":
        idle = idle_by_gateway(data)
        if ours not in idle or theirs not in idle:
            return None
        x, y = idle[ours]["per_conn_bytes"], idle[theirs]["per_conn_bytes"]
        r = x / y if x and y else None
        return (f"{fmt((x or 0) / 1024, '.1f')} KiB", f"{fmt((y or 0) / 1024, '.1f')} KiB",
                r, r is not None and r <= target)
    a, b = rows.get(ours), rows.get(theirs)
    if not a or not b:
        return None
    if kind == "per_core":
        r = ratio(rows, ours, theirs)
        return f"{fmt(a['per_core'])} /core", f"{fmt(b['per_core'])} /core", r, r is not None and r >= target
    if kind == "p99":
        x, y = a["latency"].get("p99"), b["latency"].get("p99")
        r = x / y if x and y else None
        return f"p99 {fmt(x, '.2f')} ms", f"p99 {fmt(y, '.2f')} ms", r, x is not None and y is not None and x <= y
    if kind == "scaling":
        r = ratio(rows, ours, theirs, "rps")
        return (f"{fmt(a['rps'])} req/s on {fmt(a['gw_cores'], '.2f')} cores",
                f"{fmt(b['rps'])} req/s on {fmt(b['gw_cores'], '.2f')} cores", r, r is not None and r >= target)
    raise ValueError(f"unknown goal kind {kind}")


def two_core_note(rows):
    """How the two-core figure reads: raw scaling, per-core efficiency, and who else used the CPUs."""
    two, one = rows.get(TWO_CORES), rows.get(ONE_CORE)
    if not two or not one:
        return None
    raw, eff = round_ratios(rows, TWO_CORES, ONE_CORE, "rps"), round_ratios(rows, TWO_CORES, ONE_CORE)
    listing = lambda values: " / ".join(f"{v:.2f}" for v in values) or "-"
    return (f"Two cores: `{TWO_CORES}` is a second bindgate process on two CPUs (a multi-thread runtime "
            f"with two workers), its load generator unpinned with two threads. Raw req/s: "
            f"{fmt(ratio(rows, TWO_CORES, ONE_CORE, 'rps'), '.2f')}x `{ONE_CORE}` (rounds {listing(raw)}), on "
            f"{fmt(two['gw_cores'], '.2f')} gateway cores against {fmt(one['gw_cores'], '.2f')}. Per-core "
            f"efficiency (per core on two cores / per core on one): {fmt(ratio(rows, TWO_CORES, ONE_CORE), '.2f')}x "
            f"(rounds {listing(eff)}). The machine has two vCPUs: in this row the load generator "
            f"({fmt(two['lg_cores'], '.2f')} cores) and nginx ({fmt(two['up_cores'], '.2f')} cores) run on the "
            f"same two CPUs as the gateway, so the gateway cannot get two whole cores and the raw scaling cannot "
            f"reach 2x; the per-core efficiency says how much of a core's throughput each core it did get "
            f"delivered.\n")


def write_markdown(data, rows, md_path, svg_path):
    m, s = data["machine"], data["settings"]
    out = []
    w = out.append
    w("# Benchmark results\n")
    w("Generated by `bench/run.sh` (see `bench/README.md`); every number below comes from one run.\n")
    w(f"- machine: {m['cpus']} vCPU {m['model']}, {m['memory_gib']} GiB, Linux {m['kernel']}")
    w(f"- peers: {m['haproxy']}; {m['nginx']} (upstream); {m['openssl']}; bindgate {m['bindgate']} built with {m['rustc']}")
    layout = ("gateway pinned to CPU 1 (HAProxy `nbthread 1`, bindgate one tokio worker); "
              "load generator (one thread) and nginx pinned to CPU 0") if s["pinned"] else "nothing pinned"
    two = s.get("two_cores")
    if two:
        cpus = f"CPUs {two['gateway_cpus']}" if two.get("gateway_cpus") else "unpinned"
        layout += (f"; except `{TWO_CORES}`: a second bindgate on {cpus} (two tokio workers), "
                   f"the load generator unpinned with {two['loadgen_threads']} threads")
    w(f"- layout: {layout}")
    w(f"- load: closed loop, {s['duration_s']} s per row, {s['connections']} keep-alive connections "
      f"(h2: {s['h2'][0]} connections x {s['h2'][1]} streams); {s.get('rounds', 1)} rounds, each running every row "
      f"once with HAProxy and bindgate rows back to back; same client certificate and token for all rows "
      f"except `distinct`, where every request carries a token never sent before")
    w(f"- date: {m['date']}")
    w("- reading these numbers, and why the unmet goals are unmet: `bench/README.md`\n")
    if svg_path:
        rel = os.path.relpath(svg_path, Path(md_path).resolve().parent)
        w(f"![per-core requests per second, bindgate beside HAProxy, with p99 latencies]({rel})\n")
    w("`per core` = successful req/s divided by the CPU cores the gateway used during the row: the number to "
      "compare, since raw req/s also depends on how much CPU the load generator got. Every figure is the "
      "median over the rounds (`per core, rounds` lists each round). `vs HAProxy` is the median over rounds "
      "of the per-core ratio to the matching HAProxy row measured in the same round. Latencies are of "
      "successful requests, in ms.\n")
    w("| row | req/s | gateway cores | per core | per core, rounds | vs HAProxy | p50 | p99 | p99.9 | loadgen cores | handshakes/s | non-2xx / errors |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows.values():
        lat = r["latency"]
        vs = ratio(rows, r["name"], PEERS.get(r["name"], ""))
        rounds = " / ".join(fmt(x) for x in r["per_core_all"]) or "-"
        w(f"| {r['name']} | {fmt(r['rps'])} | {fmt(r['gw_cores'], '.2f') if r['gw_cores'] > 0.05 else '-'} "
          f"| {fmt(r['per_core'])} | {rounds} | {fmt(vs, '.2f') + 'x' if vs else ''} | {fmt(lat.get('p50'), '.2f')} "
          f"| {fmt(lat.get('p99'), '.2f')} | {fmt(lat.get('p999'), '.2f')} | {fmt(r['lg_cores'], '.2f')} "
          f"| {fmt(r['handshakes_per_s']) if 'newconn' in r['name'] else '-'} | {r['non2xx']} / {r['errors']} |")
    w("")
    if data["idle"]:
        w(f"## Memory\n")
        w("| gateway | idle mTLS connections | RSS before | RSS while held | per connection | peak RSS (whole run) |")
        w("|---|---:|---:|---:|---:|---:|")
        for i in data["idle"]:
            gw = i["name"].split("-")[0]
            w(f"| {gw} | {i['opened']:,} | {i['rss_before_kib'] / 1024:.1f} MiB | {i['rss_held_kib'] / 1024:.1f} MiB "
              f"| {fmt((i['per_conn_bytes'] or 0) / 1024, '.1f')} KiB | {data['peak_rss_kib'][gw] / 1024:.1f} MiB |")
        w("")
        if data["peak_rss_kib"].get("bindgate-2cores"):
            w(f"The two-core row's bindgate (no idle row): peak RSS "
              f"{data['peak_rss_kib']['bindgate-2cores'] / 1024:.1f} MiB.\n")
    w("## Goals\n")
    w("Per gateway core, medians of per-round ratios, except where the goal says otherwise.\n")
    w("| goal | bindgate | compared with | ratio | met |")
    w("|---|---:|---:|---:|:---:|")
    for goal in GOALS:
        outcome = goal_outcome(data, rows, goal)
        if outcome:
            x, y, r, ok = outcome
            w(f"| {goal[0]} | {x} | {y} | {goal_ratio(r, ok)}x | {'yes' if ok else 'no'} |")
    w("")
    note = two_core_note(rows)
    if note:
        w(note)
    Path(md_path).write_text("\n".join(out) + "\n")


# ---- the chart -------------------------------------------------------------

WIDTH = 900
FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif"
INK, MUTED, GRID = "#1f2328", "#59636e", "#d8dee4"
BINDGATE, BINDGATE_LIGHT, HAPROXY = "#2f6fdb", "#9dbdf0", "#e07b39"
MET, UNMET = "#1a7f37", "#cf222e"
LABEL_X, BAR_X, RATIO_X = 16, 214, WIDTH - 16   # group labels; bars' origin; ratios, right-aligned
BAR_H, BAR_GAP = 15, 3

# (title, caption, bindgate row); HAProxy's row is PEERS[bindgate row].
KEEPALIVE = [
    ("mTLS only", "keep-alive h1", "bindgate-mtls-h1"),
    ("all checks", "keep-alive h1", "bindgate-full-h1"),
    ("mTLS only", "keep-alive h2", "bindgate-mtls-h2"),
    ("all checks", "keep-alive h2", "bindgate-full-h2"),
    ("all checks, distinct", "h1, a new ES256 token each", "bindgate-full-distinct"),
    ("all checks, 2 cores", "h1; HAProxy on one thread", TWO_CORES),
]
# The HAProxy rows a goal compares with outside their own group.
NAMES = {"haproxy-mtls-h1": "HAProxy mTLS only (h1)", "haproxy-mtls-h2": "HAProxy mTLS only (h2)"}
NEWCONN = [
    ("all checks, resumed", "TLS session resumption", "bindgate-full-newconn-resumed"),
    ("all checks, full", "a full handshake each", "bindgate-full-newconn-full"),
]


def text_width(text, size):
    """A sans-serif string's width, roughly: enough to keep labels apart."""
    return len(text) * size * 0.56


def nice_axis(top, ticks=4):
    """(axis maximum, tick step) with a round step, the axis at least `top`."""
    if not top or top <= 0:
        return 1.0, 1.0
    raw = top / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(f * mag for f in (1, 2, 2.5, 5, 10) if f * mag >= raw)
    return math.ceil(top / step) * step, step


def short_number(v):
    return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"


def times(target):
    """A goal's ratio as the issue writes it: 1.0x, 1.3x, 5x."""
    return f"{target:.1f}x" if target < 2 else f"{target:g}x"


def ms(v):
    return "-" if v is None else (f"{v:.1f}" if v >= 1 else f"{v:.2f}")


class Svg:
    def __init__(self):
        self.parts = []

    def text(self, x, y, s, size=12, fill=INK, anchor="start", weight=None, halo=False):
        attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"'
        if halo:  # a white outline under the glyphs, so a grid line crossing the label does not cut it
            attrs += ' stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        self.parts.append(f"<text {attrs}>{escape(s)}</text>")

    def rect(self, x, y, w, h, fill, title=None):
        inner = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h}" fill="{fill}" rx="2">'
                          f"{inner}</rect>")

    def line(self, x1, y1, x2, y2, stroke=GRID):
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"/>')


def bar(svg, y, value, scale, colour, label, title):
    """One horizontal bar and its value label: after the bar, or inside it when there is no room."""
    length = (value or 0) * scale
    svg.rect(BAR_X, y, length, BAR_H, colour, title)
    width = text_width(label, 11)
    if BAR_X + length + 6 + width <= RATIO_X - 110 or length < width + 12:
        svg.text(BAR_X + length + 6, y + BAR_H - 3.5, label, 11, INK, halo=True)
    else:
        svg.text(BAR_X + length - 6, y + BAR_H - 3.5, label, 11, "#ffffff", anchor="end")


def ratio_cell(svg, y, r, goal):
    """The ratio, right-aligned, coloured by its goal (when it has one), the goal and verdict below."""
    if goal:
        target, ok, sign = goal
        colour = MET if ok else UNMET
        svg.text(RATIO_X, y, f"{fmt(r, '.2f')}x", 16, colour, "end", "bold")
        svg.text(RATIO_X, y + 14, f"goal {sign} {times(target)}: {'met' if ok else 'not met'}", 10, colour, "end")
    else:
        svg.text(RATIO_X, y, f"{fmt(r, '.2f')}x", 16, INK, "end", "bold")
        svg.text(RATIO_X, y + 14, "vs HAProxy", 10, MUTED, "end")


def goals_of(data, rows, ours):
    """The goals of a bindgate row: {(other row, kind): (target, met, ratio)}."""
    found = {}
    for goal in GOALS:
        if goal[1] == ours:
            outcome = goal_outcome(data, rows, goal)
            if outcome:
                found[(goal[2], goal[4])] = (goal[3], outcome[3], outcome[2])
    return found


def panel(svg, y, title, caption, groups, data, rows):
    """A panel of groups, each bindgate's and HAProxy's median per core, on one linear axis."""
    present = [(t, c, ours, PEERS[ours]) for t, c, ours in groups if ours in rows and PEERS[ours] in rows]
    if not present:
        return y
    svg.text(LABEL_X, y + 14, title, 15, INK, weight="bold")
    svg.text(LABEL_X, y + 31, caption, 11, MUTED)
    y += 44
    top = max(rows[n]["per_core"] or 0 for _, _, a, b in present for n in (a, b))
    axis, step = nice_axis(top)
    scale = 400 / axis
    plot_top = y
    body = []
    for t, c, ours, theirs in present:
        goals = goals_of(data, rows, ours)
        extras = [(other, g) for (other, kind), g in goals.items() if other != theirs and kind == "per_core"]
        p99 = goals.get((theirs, "p99"))
        height = 2 * BAR_H + BAR_GAP + 14 * len(extras) + (14 if p99 else 0) + 16
        body.append((y, t, c, ours, theirs, goals, extras, p99))
        y += height
    # Grid first, so the bars sit on it.
    tick = 0.0
    while tick <= axis + 1e-9:
        x = BAR_X + tick * scale
        svg.line(x, plot_top - 4, x, y - 10)
        svg.text(x, y + 2, short_number(tick), 10, MUTED, "middle")
        tick += step
    svg.text(BAR_X + axis * scale + 10 + text_width(short_number(axis), 10) / 2, y + 2,
             "req/s per gateway core", 10, MUTED)
    for gy, t, c, ours, theirs, goals, extras, p99 in body:
        a, b = rows[ours], rows[theirs]
        svg.text(LABEL_X, gy + 12, t, 12, INK, weight="bold")
        svg.text(LABEL_X, gy + 27, c, 11, MUTED)
        for i, (row, colour, who) in enumerate(((a, BINDGATE, "bindgate"), (b, HAPROXY, "HAProxy"))):
            label = f"{fmt(row['per_core'])} /core · p99 {ms(row['latency'].get('p99'))} ms"
            title = f"{who}, {row['name']}: {fmt(row['rps'])} req/s on {fmt(row['gw_cores'], '.2f')} cores"
            bar(svg, gy + i * (BAR_H + BAR_GAP), row["per_core"], scale, colour, label, title)
        primary = goals.get((theirs, "per_core"))
        r = ratio(rows, ours, theirs)
        ratio_cell(svg, gy + 14, r, (primary[0], primary[1], "≥") if primary else None)
        ly = gy + 2 * BAR_H + BAR_GAP + 12
        for other, (target, ok, rr) in extras:
            svg.text(BAR_X, ly, f"all checks vs {NAMES.get(other, other)}: {goal_ratio(rr, ok)}x per core, "
                     f"goal ≥ {times(target)}: {'met' if ok else 'not met'}", 10.5, MET if ok else UNMET)
            ly += 14
        if p99:
            target, ok, rr = p99
            svg.text(BAR_X, ly, f"p99 {ms(a['latency'].get('p99'))} ms, HAProxy's {ms(b['latency'].get('p99'))} ms: "
                     f"goal (below HAProxy's) {'met' if ok else 'not met'}", 10.5, MET if ok else UNMET)
    return y + 20


def scaling_panel(svg, y, data, rows):
    """bindgate's raw req/s on one core and on two, the ratio and the per-core efficiency."""
    one, two = rows.get(ONE_CORE), rows.get(TWO_CORES)
    if not one or not two:
        return y
    svg.text(LABEL_X, y + 14, "Two cores against one: bindgate, all checks, keep-alive h1", 15, INK, weight="bold")
    svg.text(LABEL_X, y + 31, "raw req/s (not per core), median of the rounds; the load generator and nginx "
             "share the machine's two vCPUs, so 2x is out of reach", 11, MUTED)
    y += 44
    axis, _ = nice_axis(max(one["rps"] or 0, two["rps"] or 0))
    scale = 250 / axis  # shorter than the other panels': these labels are longer
    svg.text(LABEL_X, y + 12, "all checks", 12, INK, weight="bold")
    svg.text(LABEL_X, y + 27, "keep-alive h1", 11, MUTED)
    for i, (row, colour, n) in enumerate(((one, BINDGATE_LIGHT, "1 core"), (two, BINDGATE, "2 cores"))):
        label = (f"{n}: {fmt(row['rps'])} req/s on {fmt(row['gw_cores'], '.2f')} cores · "
                 f"p99 {ms(row['latency'].get('p99'))} ms")
        length = (row["rps"] or 0) * scale
        gy = y + i * (BAR_H + BAR_GAP)
        svg.rect(BAR_X, gy, length, BAR_H, colour, f"{row['name']}: {fmt(row['rps'])} req/s")
        svg.text(BAR_X + length + 6, gy + BAR_H - 3.5, label, 11, INK, halo=True)
    goal = next(g for g in GOALS if g[4] == "scaling")
    outcome = goal_outcome(data, rows, goal)
    ratio_cell(svg, y + 14, outcome[2], (goal[3], outcome[3], "≥"))
    eff = ratio(rows, TWO_CORES, ONE_CORE)
    y += 2 * BAR_H + BAR_GAP + 14
    svg.text(BAR_X, y, f"per-core efficiency (per core on two / per core on one): {fmt(eff, '.2f')}x; "
             f"load generator {fmt(two['lg_cores'], '.2f')} cores, nginx {fmt(two['up_cores'], '.2f')} cores "
             f"in the two-core row", 10.5, MUTED)
    return y + 26


def write_svg(data, rows, path):
    m, s = data["machine"], data["settings"]
    svg = Svg()
    hap = re.search(r"version (\d+(?:\.\d+)*)", m.get("haproxy", ""))
    svg.text(LABEL_X, 28, f"bindgate beside HAProxy{' ' + hap.group(1) if hap else ''}: requests per second "
             f"per gateway core", 18, INK, weight="bold")
    model = m.get("model", "")
    model = model if len(model) <= 40 else model[:39] + "…"
    svg.text(LABEL_X, 47, f"bindgate {m.get('bindgate', '?')} · {m.get('date', '')} · {m.get('cpus', '?')} vCPU "
             f"{model} · median of {s.get('rounds', 1)} rounds of {s.get('duration_s', '?')} s per row", 11.5, MUTED)
    # Legend, top right.
    lx = RATIO_X - 170
    for i, (name, colour) in enumerate((("bindgate", BINDGATE), ("HAProxy", HAPROXY))):
        svg.rect(lx + i * 95, 62, 12, 12, colour)
        svg.text(lx + i * 95 + 17, 72, name, 12, INK)
    y = 88
    y = panel(svg, y, "Keep-alive", "nginx upstream; bars: median per core; p99 of successful requests, "
              "closed loop; ratio: median of the per-round per-core ratios", KEEPALIVE, data, rows)
    y = panel(svg, y, "A new TLS connection per request", "a scale of its own: handshakes dominate",
              NEWCONN, data, rows)
    y = scaling_panel(svg, y, data, rows)
    svg.line(LABEL_X, y - 6, RATIO_X, y - 6)
    svg.text(LABEL_X, y + 10, "per core = successful req/s ÷ CPU cores the gateway used in the row. "
             "Full table, memory and goals: RESULTS.md; how to read them: README.md.", 10.5, MUTED)
    height = int(y + 24)
    doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family={quoteattr(FONT)} role="img">\n'
           f"<title>bindgate beside HAProxy, requests per second per gateway core</title>\n"
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>\n' + "\n".join(svg.parts) + "\n</svg>\n")
    ET.fromstring(doc.encode("utf-8"))  # well-formed, or this raises before anything is written
    Path(path).write_text(doc, encoding="utf-8")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: report.py RESULTS.json RESULTS.md [RESULTS.svg]")
    data = json.load(open(sys.argv[1]))
    rows = aggregate(data["rows"])
    md = Path(sys.argv[2])
    svg = Path(sys.argv[3]) if len(sys.argv) == 4 else md.resolve().parent / "RESULTS.svg"
    write_svg(data, rows, svg)
    write_markdown(data, rows, md, svg)


if __name__ == "__main__":
    main()
