#!/usr/bin/env python
"""How realistic is a simulated site? Prints the realism table of one or more sites.

For each site (the simulator's defaults with ``--set`` overrides, one site per seed) it
prints every realism statistic (median [p10, p90] over neurons, the share of neurons inside
its real-data target), the share of neurons inside every target at once, and what the truth
means for the analyses: the oracle correlation of a perfect centre-only model (the expected
recorded aperture response against the recorded trial mean), the mean surround suppression
on the validation images (1 - sum r_true / sum r_centre, mean over neurons, as
``sacnn.groundtruth``'s ``truth_suppression``) and the truth PT_J (PT_J of the expected
recorded response against the trial mean, mean over neurons: a perfect model's peak tuning).
Nothing is written to disk.

    PYTHONPATH=$PWD/src python scripts/simulator_realism.py --seeds 11 12 -s n_train=10000
    PYTHONPATH=$PWD/src python scripts/simulator_realism.py -s surround_strength=2

Measurements and their reading: docs/reproduction-notes.md (Simulated site).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sacnn.metrics import peak_tuning_joint, pearson
from sacnn.simulate import SiteConfig, simulate_site
from sacnn.simulate.realism import ALL_TARGETS, realism_stats, summarise

#: a realistic site: the simulator's defaults for neurons, sparsity and noise, at the scale
#: of the paper's validation set (1000 images x 10 repeats) and 300 neurons
REALISTIC = {"n_neurons": 300, "n_train": 10000, "n_val": 1000, "repeats": 10}


def truth_measures(sim: dict) -> dict[str, float]:
    """Means over neurons of what the truth implies for a perfect model."""
    trial_mean = np.nanmean(sim["val_trials"].astype(np.float64), axis=2)
    expected = sim["expected_val"]
    r_true, r_centre = sim["truth_val"]["r_true"], sim["truth_val"]["r_centre"]
    centre_sum = r_centre.sum(axis=1, dtype=np.float64)
    suppression = 1.0 - r_true.sum(axis=1, dtype=np.float64) / np.where(centre_sum > 0,
                                                                        centre_sum, np.nan)
    return {
        "truth_pt_j": float(np.mean(peak_tuning_joint(expected["expected_true"], trial_mean))),
        "oracle_corr_full": float(np.nanmean(pearson(expected["expected_true"], trial_mean))),
        "oracle_corr_aperture": float(np.nanmean(pearson(expected["expected_aperture"],
                                                         trial_mean))),
        "suppression": float(np.nanmean(suppression)),
        "mean_gate": float(np.mean(sim["truth_val"]["gate"])),
    }


def measure(settings: dict) -> dict:
    """One site's realism summary and truth measures (statistics recomputed here from the
    simulated arrays, so that this script scores any simulator version the same way)."""
    t0 = time.perf_counter()
    sim = simulate_site(SiteConfig.from_dict(settings))
    stats = realism_stats(sim["val_trials"], sim["expected_val"]["expected_true"],
                          sim["expected_val"]["expected_aperture"])
    return {"settings": settings, "summary": summarise(stats), "truth": truth_measures(sim),
            "seconds": time.perf_counter() - t0}


def format_row(res: dict) -> str:
    s = res["summary"]
    cells = []
    for k in ALL_TARGETS:
        if k in s:
            cells.append(f"{s[k]['median']:.3g} [{s[k]['p10']:.3g}, {s[k]['p90']:.3g}] "
                         f"{100 * s[k]['share_in_target']:.0f}%")
        else:
            cells.append("n/a")
    t = res["truth"]
    cells += [f"{100 * s['all_targets']['share']:.0f}%", f"{t['truth_pt_j']:.3f}",
              f"{t['oracle_corr_full']:.3f}", f"{t['oracle_corr_aperture']:.3f}",
              f"{t['suppression']:.3f}", f"{t['mean_gate']:.3f}", f"{res['seconds']:.0f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                   help="a SiteConfig setting (JSON value) over the realistic site "
                        f"{REALISTIC}")
    p.add_argument("--json", action="store_true", help="also print each result as JSON")
    args = p.parse_args(argv)
    base = dict(REALISTIC)
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            base[key] = json.loads(value)
        except json.JSONDecodeError:
            base[key] = value
    head = [f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in ALL_TARGETS.items()]
    head += ["all targets", "truth PT_J", "oracle r", "centre-only oracle r",
             "suppression", "gate", "s"]
    print("settings:", json.dumps(base))
    print("| seed | " + " | ".join(head) + " |")
    print("|" + "---|" * (len(head) + 1))
    for seed in args.seeds:
        res = measure(dict(base, seed=seed, site=f"s{seed}"))
        print(f"| {seed} " + format_row(res), flush=True)
        if args.json:
            print(json.dumps(res, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
