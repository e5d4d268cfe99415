"""What CSS inlining costs: 1,000 HTML report messages rendered and built with and without inlining.

    python benchmarks/bench_html.py              # 1,000 messages, 5 rounds each way
    python benchmarks/bench_html.py --rows 200   # fewer

Each message is a Jinja2 table report (a <style> block, 12 table rows, a media query) filled from one
row, built by ``smtp_nb.html.build`` (text part, MIME tree) and serialized as sent; then the same
report as merge rows (``MergeTemplate`` with ``html=``: render in the sandbox, inline, sanitise with nh3,
the text part, the bytes sent), which is what a merge does for each row before the network. The two
ways run interleaved, round after round, so that load on the machine hits both alike; the medians are
compared.
"""

from __future__ import annotations

import argparse
import email.policy
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jinja2

from smtp_nb.html import build, inline_css
from smtp_nb.mailmerge import MergeTemplate

MERGE_TEXT = """From: Reports <reports@example.com>
To: {{ email | mailbox(name) }}
Subject: Report for {{ name }}

"""

TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
body { font-family: Helvetica, Arial, sans-serif; color: #222 }
h1 { font-size: 20px; color: #204a87; margin: 0 0 12px }
table.report { border-collapse: collapse; width: 100% }
table.report th { background: #204a87; color: #fff; text-align: left; padding: 6px 8px }
table.report td { border-bottom: 1px solid #ddd; padding: 6px 8px }
table.report td.number { text-align: right; font-variant-numeric: tabular-nums }
tr.total td { font-weight: bold; border-top: 2px solid #204a87 }
p.note { color: #666; font-size: 12px }
@media (max-width: 600px) { table.report td { display: block } }
</style></head><body>
<h1>Sales report for {{ name }}</h1>
<table class="report"><thead><tr><th>region</th><th>units</th><th>revenue</th></tr></thead><tbody>
{% for region, units, revenue in lines %}<tr><td>{{ region }}</td><td class="number">{{ units }}</td>
<td class="number">{{ revenue }}</td></tr>
{% endfor %}<tr class="total"><td>total</td><td class="number">{{ units }}</td>
<td class="number">{{ revenue }}</td></tr>
</tbody></table>
<p class="note">Figures of week {{ week }}. <a href="https://example.com/reports/{{ id }}">The full report</a>.</p>
</body></html>
"""


def rows(count: int) -> list[dict[str, object]]:
    out = []
    for i in range(count):
        lines = [(f"Region {r}", (i * 7 + r * 13) % 500, f"{((i + r) * 1234.5) % 99999:,.2f}") for r in range(12)]
        out.append(
            {
                "id": i,
                "name": f"Customer {i}",
                "email": f"customer{i}@example.com",
                "week": i % 52 + 1,
                "lines": lines,
                "units": sum(line[1] for line in lines),
                "revenue": "123,456.00",
            }
        )
    return out


def run(template: jinja2.Template, data: list[dict[str, object]], inline: bool) -> tuple[float, int]:
    """Seconds for the whole batch, and the bytes of the last message's HTML."""
    started = time.perf_counter()
    size = 0
    for row in data:
        headers = {"From": "reports@example.com", "To": str(row["email"]), "Subject": f"Report for {row['name']}"}
        message = build(template.render(row), headers=headers, inline_css=inline)
        message.as_bytes(policy=email.policy.SMTP)
        size = len(message.get_body(("html",)).get_content().encode())
    return time.perf_counter() - started, size


def merge_rows(data: list[dict[str, object]], inline: bool) -> float:
    """Seconds for the batch as merge rows: each rendered, checked and serialized as the merge sends it."""
    template = MergeTemplate(MERGE_TEXT, html=TEMPLATE, inline_css=inline)
    started = time.perf_counter()
    for number, row in enumerate(data, 1):
        template.render(row, number).to_bytes()
    return time.perf_counter() - started


def render_only(template: jinja2.Template, data: list[dict[str, object]], inline: bool) -> float:
    """Seconds to render the batch, with or without ``inline_css`` on each result: inlining's own cost."""
    started = time.perf_counter()
    for row in data:
        html = template.render(row)
        if inline:
            inline_css(html)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    template = jinja2.Environment(autoescape=True).from_string(TEMPLATE)
    data = rows(args.rows)
    run(template, data[:50], True)  # warm up: imports, the inliner, Jinja's caches
    run(template, data[:50], False)
    times: dict[bool, list[float]] = {True: [], False: []}
    renders: dict[bool, list[float]] = {True: [], False: []}
    merges: dict[bool, list[float]] = {True: [], False: []}
    merge_rows(data[:50], True)
    sizes: dict[bool, int] = {}
    for _ in range(args.rounds):
        for inline in (False, True):
            seconds, sizes[inline] = run(template, data, inline)
            times[inline].append(seconds)
            renders[inline].append(render_only(template, data, inline))
            merges[inline].append(merge_rows(data, inline))
    plain, inlined = statistics.median(times[False]), statistics.median(times[True])
    render, render_inlined = statistics.median(renders[False]), statistics.median(renders[True])
    print(f"{args.rows:,} HTML messages (Jinja2 render, build, serialize), median of {args.rounds} rounds")
    print(f"  without inlining: {plain:.3f} s  ({plain / args.rows * 1e3:.2f} ms/message, HTML {sizes[False]:,} bytes)")
    print(
        f"  with inlining:    {inlined:.3f} s  ({inlined / args.rows * 1e3:.2f} ms/message, HTML {sizes[True]:,} bytes)"
    )
    print(f"  ratio with/without: {inlined / plain:.2f}x")
    merge, merge_inlined = statistics.median(merges[False]), statistics.median(merges[True])
    print(
        f"{args.rows:,} merge rows (MergeTemplate with html=): without inlining {merge / args.rows * 1e3:.2f} "
        f"ms/row, with {merge_inlined / args.rows * 1e3:.2f} ms/row; ratio with/without: {merge_inlined / merge:.2f}x"
    )
    print(
        f"Jinja2 render alone: {render / args.rows * 1e3:.3f} ms/message; with inline_css: "
        f"{render_inlined / args.rows * 1e3:.3f} ms/message (ratio {render_inlined / render:.2f}x); "
        f"inlining itself: {(render_inlined - render) / args.rows * 1e3:.3f} ms/message"
    )


if __name__ == "__main__":
    main()
