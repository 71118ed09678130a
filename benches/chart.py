#!/usr/bin/env python3
"""Draws BENCHMARKS.md's chart from the wrk figures: `python3 benches/chart.py`.

Reads benches/wrk.csv (the two rounds of `benches/wrk.sh` per store) and writes
docs/wrk.svg: requests per second of `GET /health` and authenticated `GET /me`, the mean of
the rounds, one pair of bars per store. Plain SVG, no dependencies.
"""

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60
COLOURS = {"/health": "#9aa5b1", "/me": "#2f6fdf"}


def main() -> None:
    rows = list(csv.DictReader((ROOT / "benches/wrk.csv").open()))
    series = [
        (
            row["store"],
            {
                "/health": (float(row["health_round1"]) + float(row["health_round2"])) / 2,
                "/me": (float(row["me_round1"]) + float(row["me_round2"])) / 2,
            },
        )
        for row in rows
    ]
    top = max(value for _, values in series for value in values.values())
    scale_max = ((int(top) // 25_000) + 1) * 25_000
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / len(series)
    bar_w = group_w / 3
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
        "Requests per second through the demo (wrk, 64 connections)</text>",
    ]
    for tick in range(0, scale_max + 1, 25_000):
        y = TOP + plot_h - plot_h * tick / scale_max
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick // 1000}k</text>')
    for index, (store, values) in enumerate(series):
        x0 = LEFT + index * group_w + bar_w / 2
        for offset, (route, value) in enumerate(values.items()):
            height = plot_h * value / scale_max
            x = x0 + offset * bar_w
            y = TOP + plot_h - height
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{height:.1f}" '
                f'fill="{COLOURS[route]}"><title>{store} {route}: {value:.0f}/s</title></rect>'
            )
            out.append(
                f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
                f"{value / 1000:.0f}k</text>"
            )
        out.append(
            f'<text x="{x0 + bar_w:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{store}</text>'
        )
    for offset, (route, colour) in enumerate(COLOURS.items()):
        x = LEFT + offset * 140
        out.append(f'<rect x="{x}" y="{HEIGHT - 24}" width="12" height="12" fill="{colour}"/>')
        label = "GET /health (no auth)" if route == "/health" else "GET /me (authenticated)"
        out.append(f'<text x="{x + 18}" y="{HEIGHT - 14}">{label}</text>')
    out.append("</svg>")
    (ROOT / "docs/wrk.svg").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
