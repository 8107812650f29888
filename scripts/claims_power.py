#!/usr/bin/env python
"""How many neurons each claim of a config needs for 80 % power at the paper's M1S1 effects.

    python scripts/claims_power.py --configfile config/simulated.yaml \
        [--measured docs/measurements/rf-cpu-2026-11-27/groundtruth.csv ...]

For every row the config's claims table will have (effect rows on every site, interaction
rows of surround-dependent claims with each site's control: the spec the workflow builds,
``sacnn.plan.WorkflowPlan.claims_spec``), prints the paper's effect on M1S1, the per-neuron
spread used, and the neurons needed at alpha (one test alone) and at alpha / family (the first
step of Holm over the whole table: what every row can count on), beside the neurons the
config's site gives. The spread of per-neuron differences comes from ``--measured`` files
(groundtruth.csv or metrics.csv with site, model, neuron and the measure) where they hold the
claim's two models, else from the planning values below, each with its source. A percent
claim (A.7) is converted through the linearised ratio of means. Nothing here is a result of
this pipeline's run: these are the numbers a design is sized by (docs/validation.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from sacnn import cost, plan
from sacnn.power import neurons_for_power, sparse_pt_sd
from sacnn.workflow_config import load_config

ROOT = Path(__file__).resolve().parents[1]

#: The paper's effects on M1S1 (model - versus), by claim name, with their source. PT in
#: fractions (the paper prints percent). Fig. 5/6 give PT only as bars: Table 3's 50 % values
#: (ff+sa-CNN vs ff-CNN) stand in for them.
PAPER = {
    "sa_correlation": (0.416 - 0.393, "Table 1, M1S1: 0.416 vs 0.393"),
    "rf_beats_ff": (0.420 - 0.393, "Table 1, M1S1: 0.420 vs 0.393"),
    "incremental_beats_simultaneous": (0.421 - 0.409, "Table 2, M1S1: 0.421 vs 0.409"),
    "sa_peak_tuning_joint": (0.01026 - 0.00762, "Table 3, 50 %: PT_J 1.026 % vs 0.762 %"),
    "sa_peak_tuning_separate": (0.02715 - 0.01556, "Table 3, 50 %: PT_S 2.715 % vs 1.556 %"),
    "incremental_fc2_peak_tuning": (0.01026 - 0.00762,
                                    "no number (Fig. 6 bars); Table 3's PT_J gap assumed"),
    "sa_data_efficiency": (7.2 - 6.6, "A.7 / Table 3: +7.2 % at 25 % vs +6.6 % at 100 %"),
}
#: Both models' mean PT behind a PT effect (for the sparse spread): Table 3, 50 %.
PT_MEANS = {"pt_j": (0.01026, 0.00762), "pt_s": (0.02715, 0.01556)}
#: Planning spread of a per-neuron corr difference where nothing is measured: rf-CNN - ff-CNN
#: at 50 epochs on a realistic simulated site (docs/measurements/rf-cpu-2026-11-27, 10 neurons).
CORR_SD = (0.117, "rf - ff, 50 epochs, realistic site, 10 neurons (rf-cpu-2026-11-27)")
MEAN_CORR = (0.40, "Table 1: model means 0.39-0.42 on M1S1")
TOP_K = 10


def measured_sd(tables: list[pd.DataFrame], model: str, versus: str, measure: str
                ) -> tuple[float, str] | None:
    """Median over sites of the spread of model - versus per neuron, where measured."""
    sds, sources = [], []
    for t in tables:
        if measure not in t:
            continue
        for site, g in t.groupby("site"):
            wide = g.pivot_table(index="neuron", columns="model", values=measure)
            if model in wide and versus in wide:
                d = (wide[model] - wide[versus]).dropna()
                if len(d) > 2:
                    sds.append(float(d.std(ddof=1)))
                    sources.append(f"{site} n={len(d)}")
    if not sds:
        return None
    return float(pd.Series(sds).median()), "measured: " + ", ".join(sources)


def spread(test: dict, tables: list[pd.DataFrame]) -> tuple[float, str] | None:
    measure = test["measure"]
    if measure in PT_MEANS:
        pm, pv = PT_MEANS[measure]
        return sparse_pt_sd(pm, pv, TOP_K), f"sparse PT model, k={TOP_K}, Table 3 means"
    if measure != "corr":
        return None
    found = measured_sd(tables, test["model"], test["versus"], "corr")
    sd, source = found or CORR_SD
    if test.get("scale") == "percent":
        # 100 * sum(a)/sum(b): per neuron ~ 100 (a_i - R b_i) / mean(b); a difference of two
        # fractions' percents adds a second such term
        terms = 2 if test.get("reference_fraction") else 1
        return 100 * sd / MEAN_CORR[0] * math.sqrt(terms), f"{source}; percent via {MEAN_CORR[1]}"
    return sd, source


def rows(spec: dict) -> list[tuple[dict, str, str | None]]:
    """(test, site, control or None) for every row of the claims table the spec gives."""
    out = []
    for test in spec["tests"]:
        sites = test.get("sites") or spec["default_sites"]
        for site in sites:
            out.append((test, site, None))
            if test.get("surround_dependent"):
                out += [(test, site, c) for c in spec.get("controls", {}).get(site, [])
                        if c in sites]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=ROOT / "config" / "simulated.yaml")
    p.add_argument("--measured", type=Path, nargs="*", default=[])
    p.add_argument("--alpha", type=float, default=None, help="default: the config's")
    p.add_argument("--power", type=float, default=0.8)
    args = p.parse_args(argv)
    config = load_config([args.configfile])
    spec = plan.WorkflowPlan(config).claims_spec()
    alpha = args.alpha or float(spec["alpha"])
    tables = [pd.read_csv(f, dtype={"neuron": str}) for f in args.measured]
    table = rows(spec)
    family = len(table)
    print(f"{args.configfile}: {family} rows in the claims table (Holm's first step at "
          f"alpha/{family} = {alpha / family:.2g}); power {args.power}")
    print(f"{'claim':32s} {'site':22s} {'effect':>8s} {'sd':>7s} {'n(alpha)':>9s} "
          f"{'n(Holm)':>8s} {'has':>5s}  sources")
    for test, site, control in table:
        name = test["claim"]
        where = f"{site}-{control}" if control else site
        size = cost.site_size(config, site, {}).neurons
        effect = PAPER.get(name)
        sd = spread(test, tables)
        if effect is None or sd is None:
            print(f"{name:32s} {where:22s} {'':>8s} {'':>7s} {'-':>9s} {'-':>8s} {size:5d}  "
                  "no effect size in the paper")
            continue
        s = sd[0] * (math.sqrt(2) if control else 1.0)  # a difference of two sites' effects
        n1 = neurons_for_power(effect[0], s, alpha=alpha, power=args.power)
        nh = neurons_for_power(effect[0], s, alpha=alpha, power=args.power, family=family)
        print(f"{name:32s} {where:22s} {effect[0]:8.4f} {s:7.4f} {n1:9d} {nh:8d} {size:5d}  "
              f"{effect[1]}; sd: {sd[1]}{' x sqrt 2' if control else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
