#!/usr/bin/env python
"""Why the pipeline reports a scale-free peak measure beside PT, measured on a simulated site.

Simulates a site with the simulator's realistic defaults (in memory, nothing written) and
prints, for predictors built from its truth, the mean over neurons of PT_J, PT_S, the peak
overlap (:func:`sacnn.metrics.peak_overlap`) and the correlation with the recorded responses
(mean over the repeats):

* the expected recorded response ``val_expected_true`` (dF/F): what a perfect model of the
  recording predicts, the truth every ground-truth score uses;
* the noiseless rate ``r_true``: what the truth's PT was computed from before (units of the
  peak rate against a dF/F threshold);
* the expected centre-only response and the same stretched by 1.5 (a centre-only model whose
  scale is off), and the perfect predictor stretched by 1.5.

    python scripts/peak_measures.py --seed 11
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from sacnn import metrics as M
from sacnn.simulate.config import SiteConfig
from sacnn.simulate.site import simulate_site


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--neurons", type=int, default=40)
    p.add_argument("--train", type=int, default=3000, help="training images (calibration)")
    p.add_argument("--val", type=int, default=1000, help="validation images")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    cfg = SiteConfig.from_dict({"site": "peaks", "seed": args.seed, "n_neurons": args.neurons,
                                "n_train": args.train, "n_val": args.val,
                                "repeats": args.repeats})
    sim = simulate_site(cfg)
    recorded = sim["val_trials"].mean(axis=2).astype(np.float64)
    expected = {k: v.astype(np.float64) for k, v in sim["expected_val"].items()}
    predictors = {
        "perfect (expected_true, dF/F)": expected["expected_true"],
        "rate r_true": sim["truth_val"]["r_true"].astype(np.float64),
        "centre-only (expected_centre)": expected["expected_centre"],
        "centre-only x 1.5": 1.5 * expected["expected_centre"],
        "perfect x 1.5": 1.5 * expected["expected_true"],
    }
    print(f"seed {args.seed}: {recorded.shape[0]} neurons x {recorded.shape[1]} validation "
          f"images x {args.repeats} repeats, k = {M.n_top(recorded.shape[1])} top images")
    print(f"{'predictor':32s} {'PT_J':>6s} {'PT_S':>6s} {'overlap':>8s} {'corr':>6s}")
    for name, pred in predictors.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            corr = np.nanmean(M.pearson(pred, recorded))
        print(f"{name:32s} {np.mean(M.peak_tuning_joint(pred, recorded)):6.3f} "
              f"{np.mean(M.peak_tuning_separate(pred, recorded)):6.3f} "
              f"{np.mean(M.peak_overlap(pred, recorded)):8.3f} {corr:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
