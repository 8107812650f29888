"""The paper's claims as statistical tests on every site, simulated or recorded.

A claim compares two models neuron by neuron on one measure (``model`` is claimed to exceed
``versus``): the paired differences ``d_i`` give the effect (their mean), a percentile
bootstrap confidence interval over neurons (seeded from the config) and a two-sided Wilcoxon
signed-rank test. A data-fraction claim (``reference_fraction``) tests a difference of
differences: ``(model - versus) at fraction - (model - versus) at reference_fraction``
(Table 3: self-attention's advantage grows when data is scarce).

Verdicts say what the data says, nothing is pinned: ``supported`` (p < alpha and the interval
above 0), ``contradicted`` (p < alpha and the interval below 0), ``not shown`` (otherwise),
``undetermined`` with the reason when the test cannot be made (fewer than two neurons, or PT 0
for both models in every neuron: the top images are below the metric's resolution). On a
control site without any surround a claim marked ``surround_dependent`` is expected to be
null; ``control`` says whether it was.

``python -m sacnn.claims --spec '<json>' --out results/claims.csv --meta results/claims.json``
(the workflow's ``claims`` rule builds the spec from the config's ``claims`` section).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sacnn.evaluation import read_metrics
from sacnn.experiment import NO_SURROUND, replicate_name
from sacnn.fileio import write_csv, write_json
from sacnn.provenance import code_version
from sacnn.seeding import numpy_rng

CLAIM_COLUMNS = [
    "claim", "statement", "site", "site_surround", "measure", "model", "versus", "fraction",
    "reference_fraction", "n", "n_seeds", "mean_model", "mean_versus", "effect", "effect_sem",
    "effect_seed_sd", "ci_low", "ci_high", "confidence", "p_value", "verdict",
    "surround_dependent", "control",
]
"""Columns of claims.csv. ``effect`` is the mean paired difference (model - versus; for a
data-fraction claim the mean difference of differences) of the per-neuron values averaged
over the ``n_seeds`` training seeds, ``effect_sem`` its standard error over neurons,
``effect_seed_sd`` the standard deviation of the effect between training seeds (NaN with one
seed), ``ci_low/ci_high`` the bootstrap interval at ``confidence``, ``p_value`` the two-sided
Wilcoxon signed-rank test, ``n`` the neurons with every value defined."""

MEASURES = ("corr", "pt_j", "pt_s", "centre_share")
"""``corr``/``pt_j``/``pt_s`` come from metrics.csv; ``centre_share`` is the share of the
readout carried by the centre hypercolumn (:func:`sacnn.analysis.centre_share`, Fig. 7's
centre dominance) and needs the model's weights."""

class ClaimError(ValueError):
    """A claims spec that cannot be evaluated; the message names the key or file."""


# ------------------------------------------------------------------------------ statistics


def bootstrap_ci(d: np.ndarray, n_boot: int, confidence: float, rng: np.random.Generator
                 ) -> tuple[float, float]:
    """Percentile interval of the mean of ``d`` over ``n_boot`` resamples of its entries."""
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def signed_rank_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; zeros split between the signs (``zsplit``),
    so neurons without a difference count against an effect rather than being dropped."""
    from scipy.stats import wilcoxon

    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)


def smallest_p(n: int) -> float:
    """The smallest two-sided signed-rank p-value ``n`` paired values can give (all of one
    sign): ``2 / 2**n``."""
    return min(1.0, 2.0 / 2.0 ** n)


def paired_test(d: np.ndarray, *, n_boot: int, confidence: float, alpha: float,
                     rng: np.random.Generator) -> dict[str, Any]:
    """Effect, interval, p-value and verdict of paired differences ``d`` (NaN-free)."""
    out: dict[str, Any] = {"n": int(d.size), "effect": np.nan, "ci_low": np.nan,
                           "ci_high": np.nan, "p_value": np.nan}
    if d.size < 2:
        out["verdict"] = f"undetermined: {d.size} neuron(s) with both values defined"
        return out
    out["effect"] = float(d.mean())
    out["ci_low"], out["ci_high"] = bootstrap_ci(d, n_boot, confidence, rng)
    out["p_value"] = signed_rank_p(d)
    floor = smallest_p(d.size)
    if floor >= alpha:
        out["verdict"] = (f"undetermined: {d.size} neurons cannot reach p < {alpha:g} "
                          f"(the smallest two-sided signed-rank p is {floor:.3g})")
    elif out["p_value"] < alpha and out["ci_low"] > 0:
        out["verdict"] = "supported"
    elif out["p_value"] < alpha and out["ci_high"] < 0:
        out["verdict"] = "contradicted"
    else:
        out["verdict"] = "not shown"
    return out


def control_reading(verdict: str, surround: str, surround_dependent: bool) -> str:
    """What a control site says about the machinery (empty where it is no control)."""
    if not surround_dependent or surround != NO_SURROUND:
        return ""
    if verdict in ("supported", "contradicted"):
        return ("VIOLATED: an effect on a site without any surround, so this comparison "
                "picks up something other than the surround")
    return "null as expected (site without surround)"


# ------------------------------------------------------------------------------ measures


def metric_values(path: str | Path, measure: str) -> pd.Series:
    """One measure per neuron (index: neuron id as text) from a metrics.csv."""
    df = read_metrics(path)
    values = df.set_index("neuron")[measure].astype(float)
    values.index = values.index.astype(str)
    return values


def validation_images(dataset: str | Path) -> np.ndarray:
    """The model inputs a dataset validates on."""
    from sacnn.data.ingest import open_dataset

    return open_dataset(dataset)["val_images"].values


def centre_share_values(weights: Sequence[str | Path], images: np.ndarray) -> pd.Series:
    """``centre_share`` per neuron on ``images`` (a dataset's validation images)."""
    import torch

    from sacnn.analysis import centre_share
    from sacnn.training.weights import load_networks

    ids, nets = load_networks(weights, dtype=torch.float32)
    return pd.Series([centre_share(net, images) for net in nets], index=ids, dtype=float)


class _Values:
    """Per-neuron values of (site, model, fraction, measure), each read once; a site's
    validation images are read once for all its models."""

    def __init__(self, sites: Mapping[str, Any]) -> None:
        self.sites = sites
        self._cache: dict[tuple[str, str, str, str], pd.Series] = {}
        self._images: dict[str, np.ndarray] = {}

    def get(self, site: str, model: str, fraction: str, measure: str) -> pd.Series:
        key = (site, model, fraction, measure)
        if key not in self._cache:
            s = self.sites[site]
            try:
                if measure == "centre_share":
                    if site not in self._images:
                        self._images[site] = validation_images(s["dataset"])
                    self._cache[key] = centre_share_values(s["weights"][model][fraction],
                                                           self._images[site])
                else:
                    self._cache[key] = metric_values(s["metrics"][model][fraction], measure)
            except KeyError as exc:
                raise ClaimError(f"claims spec: no {measure} input for site {site}, model "
                                 f"{model}, fraction {fraction} ({exc})") from None
        return self._cache[key]


def _difference(values: _Values, site: str, claim: Mapping[str, Any], measure: str,
                model: str, versus: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per-neuron ``model``, ``versus`` and the claim's difference (of differences), paired
    by neuron id; neurons with an undefined value are left out."""
    fraction = claim.get("fraction", "f100")
    m = values.get(site, model, fraction, measure)
    v = values.get(site, versus, fraction, measure)
    both = pd.concat([m.rename("m"), v.rename("v")], axis=1, join="inner").dropna()
    d = both["m"] - both["v"]
    ref = claim.get("reference_fraction")
    if ref:
        mr = values.get(site, model, ref, measure)
        vr = values.get(site, versus, ref, measure)
        r = pd.concat([mr.rename("m"), vr.rename("v")], axis=1, join="inner").dropna()
        dd = pd.concat([d.rename("f"), (r["m"] - r["v"]).rename("r")], axis=1,
                       join="inner").dropna()
        d = dd["f"] - dd["r"]
    return both["m"], both["v"], d


def evaluate_claim(claim: Mapping[str, Any], site: str, values: _Values, *, n_boot: int,
                   confidence: float, alpha: float, seed: int, surround: str) -> dict[str, Any]:
    """One row of claims.csv. With several training seeds (``claim["seeds"]``, replicates
    named by :func:`sacnn.experiment.replicate_name`) each neuron's values are averaged over
    the seeds, and the spread of the effect between seeds is reported beside its SEM."""
    measure = claim["measure"]
    fraction = claim.get("fraction", "f100")
    ref = claim.get("reference_fraction")
    n_seeds = int(claim.get("seeds") or 1)
    per_seed = [_difference(values, site, claim, measure, replicate_name(claim["model"], k),
                            replicate_name(claim["versus"], k))
                for k in range(1, n_seeds + 1)]
    a, b, d = (pd.concat([p[i] for p in per_seed], axis=1, join="inner").mean(axis=1)
               .to_numpy(dtype=float) for i in range(3))
    seed_effects = [float(p[2].mean()) for p in per_seed if len(p[2])]
    rng = numpy_rng(seed, "claims", claim["claim"], site)
    row = {
        "claim": claim["claim"], "statement": claim.get("statement", ""), "site": site,
        "site_surround": surround, "measure": measure, "model": claim["model"],
        "versus": claim["versus"], "fraction": fraction, "reference_fraction": ref or "",
        "n_seeds": n_seeds,
        "mean_model": float(np.mean(a)) if a.size else np.nan,
        "mean_versus": float(np.mean(b)) if b.size else np.nan,
        "effect_sem": float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else np.nan,
        "effect_seed_sd": float(np.std(seed_effects, ddof=1)) if len(seed_effects) > 1
        else np.nan,
        "confidence": confidence,
        **paired_test(d, n_boot=n_boot, confidence=confidence, alpha=alpha, rng=rng),
        "surround_dependent": bool(claim.get("surround_dependent", False)),
    }
    if measure in ("pt_j", "pt_s") and a.size and not np.any(a) and not np.any(b):
        row["verdict"] = ("undetermined: PT is 0 for both models in every neuron (no "
                          "prediction reached the top-image threshold at this scale)")
    row["control"] = control_reading(row["verdict"], surround, row["surround_dependent"])
    return row


def evaluate(spec: Mapping[str, Any]) -> pd.DataFrame:
    """Every claim on every site it names (``spec``: see :func:`main`)."""
    sites = spec["sites"]
    values = _Values(sites)
    rows = []
    for claim in spec["tests"]:
        if claim["measure"] not in MEASURES:
            raise ClaimError(f"claims.tests {claim['claim']}: measure {claim['measure']!r}, "
                             f"expected one of {list(MEASURES)}")
        for site in claim.get("sites") or spec["default_sites"]:
            if site not in sites:
                raise ClaimError(f"claims.tests {claim['claim']}: site {site!r} has no inputs "
                                 f"in the spec (known {sorted(sites)})")
            rows.append(evaluate_claim(
                claim, site, values, n_boot=int(spec["bootstrap"]),
                confidence=float(spec["confidence"]), alpha=float(spec["alpha"]),
                seed=int(spec["seed"]), surround=sites[site]["surround"]))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def read_claims(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ClaimError(f"{path}: missing columns {missing}; written by an older sacnn: "
                         "delete it and run snakemake again")
    return df


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.claims") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True,
                   help="JSON: tests, default_sites, bootstrap, confidence, alpha, seed, sites "
                        "{site: {surround, dataset, metrics {model: {fraction: path}}, "
                        "weights {model: {fraction: [paths]}}}}, provenance")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--meta", type=Path)
    args = p.parse_args(argv)
    spec = json.loads(args.spec)
    try:
        df = evaluate(spec)
    except (ClaimError, ValueError) as exc:
        raise SystemExit(f"sacnn.claims: error: {exc}") from None
    write_csv(df, args.out)
    if args.meta:
        write_json({"code_version": code_version(), "spec": spec, "columns": CLAIM_COLUMNS},
                   args.meta)
    cols = ["claim", "site", "effect", "ci_low", "ci_high", "p_value", "verdict"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 40):
        print(df[cols].round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
