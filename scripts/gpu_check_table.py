#!/usr/bin/env python
"""The tables of a ``scripts/gpu_check.sh`` run, as Markdown, from its JSON lines.

    python scripts/gpu_check_table.py OUT_DIR > OUT_DIR/table.md

Throughput (``bench.jsonl``): architecture | neurons | variant | naive ips | trainer ips |
ratio per round | ms/step | TFLOP/s | GiB | top kernels (ms per step); then issue #19's
targets read from it (>= 30x the naive loop in every round at 300 neurons for ff-CNN and
ff+sa-CNN, >= 1x at one neuron: the best variant of each), and the precision check
(``precision.jsonl``: median change of a neuron's correlation against float64 <= 0.008).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"ff-CNN": {300: 30.0, 1: 1.0}, "ff+sa-CNN": {300: 30.0, 1: 1.0}}
MEDIAN_BAR = 0.008


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _num(value, spec: str) -> str:
    return format(value, spec) if value is not None else "n/a"


def throughput_table(rows: list[dict]) -> list[str]:
    header = ("| architecture | neurons | variant | naive ips | trainer ips | ratio per round | "
              "ms/step | TFLOP/s | GiB | top kernels (ms/step) |")
    out = [header, "|" + "---|" * 10]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['architecture']} | {r['neurons']} | {r.get('variant', '')} | "
                       f"{r['error']} |" + " |" * 6)
            continue
        ratios = " ".join(f"{x:.2f}" for x in r.get("ratios", [])) or "n/a"
        kernels = "; ".join(f"{name} {ms:.2f}" for name, ms in r.get("top_kernels", []))
        out.append(
            f"| {r['architecture']} | {r['neurons']} | {r.get('variant', 'default')} | "
            f"{_num(r.get('naive_ips'), ',.0f')} | {_num(r.get('trainer_ips'), ',.0f')} | "
            f"{ratios} | {_num(r.get('ms_per_step'), '.2f')} | {_num(r.get('tflops'), '.1f')} "
            f"| {_num(r.get('peak_mem_gib'), '.1f')} | {kernels.replace('|', '/')} |")
    return out


def targets(rows: list[dict]) -> list[str]:
    """Per architecture and size of issue #19's targets, the best variant's worst round."""
    out = []
    for arch, sizes in TARGETS.items():
        for n, bar in sizes.items():
            got = [(min(r["ratios"]), r.get("variant", "default")) for r in rows
                   if r["architecture"] == arch and r["neurons"] == n and r.get("ratios")]
            if not got:
                out.append(f"- {arch}, {n} neuron(s): not measured (target >= {bar:g}x)")
                continue
            ratio, variant = max(got)
            verdict = "met" if ratio >= bar else "not met"
            out.append(f"- {arch}, {n} neuron(s): best variant {variant}, lowest round "
                       f"{ratio:.2f}x the naive loop: target >= {bar:g}x {verdict}")
    return out


def precision_table(rows: list[dict]) -> list[str]:
    header = ("| architecture | precision | options | max abs change | median | mean r "
              "(float64) | best epoch moved | median <= 0.008 |")
    out = [header, "|" + "---|" * 8]
    for r in rows:
        ok = "yes" if r["median_abs_diff"] <= MEDIAN_BAR else "no"
        options = ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items()) or "-"
        out.append(f"| {r['architecture']} | {r['precision']} | {options} | "
                   f"{r['max_abs_diff']:.4f} | {r['median_abs_diff']:.4f} | "
                   f"{r['mean_corr']:.3f} ({r['ref_mean_corr']:.3f}) | "
                   f"{100 * r['best_epoch_moved']:.0f} % | {ok} |")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit("usage: scripts/gpu_check_table.py OUT_DIR")
    out = Path(argv[0])
    bench, precision = read(out / "bench.jsonl"), read(out / "precision.jsonl")
    if not bench:
        raise SystemExit(f"{out / 'bench.jsonl'}: no throughput rows")
    device = bench[0].get("device", "?")
    lines = [f"# gpu_check on {device}, torch {bench[0].get('torch', '?')}", "",
             *throughput_table(bench), "", "Targets (issue #19):", *targets(bench)]
    if precision:
        lines += ["", *precision_table(precision)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
