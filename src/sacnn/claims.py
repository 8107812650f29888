"""The paper's claims as statistical tests on every site, simulated or recorded.

A claim says ``model`` beats ``versus`` on one measure. The unit of replication is the neuron:
both models are fitted to the same neurons, so a claim is a statistic of per-neuron values,
paired by neuron id (the statistics: :mod:`sacnn.claim_stats`).

- ``scale: absolute`` (default): the per-neuron difference ``d_i = model_i - versus_i``
  (with ``reference_fraction`` the difference of differences ``d at fraction - d at
  reference_fraction``, Table 3); the effect is the mean of ``d``, tested by a two-sided
  sign-flip permutation test (exact for few non-zero differences; zeros, frequent in PT,
  cannot dilute it).
- ``scale: percent``: what the paper's tables report, ``100 * (sum(model) / sum(versus) - 1)``
  over the neurons (the ratio of the means), or its difference between ``fraction`` and
  ``reference_fraction`` (A.7); tested by a jackknife t-test over neurons.

Rows of claims.csv (:data:`CLAIM_COLUMNS`): one ``effect`` row per (claim, site), and for a
``surround_dependent`` claim one ``interaction`` row per (claim, site with a surround, control
of that site): the effect on the site minus the effect on its control
(:func:`sacnn.experiment.site_controls`: same seed and neurons, no surround), paired by
neuron. Every row with a p-value is one test of a family adjusted together (Holm by default);
verdicts are decided on the adjusted p: ``supported`` (p < alpha and the interval above 0),
``contradicted`` (p < alpha and the interval below 0), ``not shown``, or ``undetermined:
<reason>`` when no test can decide (too few neurons, PT 0 for both models everywhere, too few
non-zero differences to ever reach alpha). On a control site (surround ``none``) a
surround-dependent claim must be *shown* null: ``control`` is ``null shown`` (interval inside
+-margin), ``VIOLATED`` (an effect shown), ``inconclusive`` or ``undetermined: <reason>``.

``python -m sacnn.claims --spec '<json>' --out results/claims.csv --meta results/claims.json``
(the workflow's ``claims`` rule builds the spec from the config's ``claims`` section:
:meth:`sacnn.plan.WorkflowPlan.claims_spec`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sacnn import claim_stats as stats
from sacnn.claim_values import ClaimError, SpecValues, Values
from sacnn.experiment import NO_SURROUND, replicate_name
from sacnn.fileio import write_csv, write_json
from sacnn.provenance import code_version
from sacnn.seeding import numpy_rng
from sacnn.settings import json_object_argument

CLAIM_COLUMNS = [
    "claim", "statement", "kind", "site", "site_surround", "control_site", "measure", "scale",
    "model", "versus", "fraction", "reference_fraction", "n", "n_seeds", "mean_model",
    "mean_versus", "effect", "effect_unit", "effect_sem", "effect_seed_sd", "interval",
    "confidence", "ci_low", "ci_high", "test", "p_value", "p_floor", "adjust", "p_adjusted",
    "verdict", "surround_dependent", "margin", "control",
]
"""Columns of claims.csv. ``kind``: ``effect`` (one site) or ``interaction`` (the effect on
``site`` minus that on ``control_site``). ``n``: neurons with every value defined (on both
sites for an interaction); ``effect`` (in ``effect_unit``) is computed on the per-neuron values
averaged over the ``n_seeds`` training seeds; ``mean_model``/``mean_versus``: the two models on
``site`` at ``fraction`` over those neurons; ``effect_sem``: the jackknife standard error over
neurons (sd / sqrt(n) for a mean); ``effect_seed_sd``: the spread of the effect between
training seeds (NaN with one seed); ``ci_low``/``ci_high``: the ``interval`` method's interval
at ``confidence``; ``test``: how ``p_value`` was computed; ``p_floor``: the smallest p the data
can give (0 for a t-test); ``p_adjusted``: ``p_value`` adjusted over the family by ``adjust``
(the verdict's p); ``margin``: the smallest effect the paper claims on this measure and scale
(a control's interval must lie inside +-margin); ``control``: the control outcome of a
surround-dependent effect row on a site without surround (empty elsewhere)."""

KINDS = ("effect", "interaction")
MEASURES = ("corr", "pt_j", "pt_s", "peak_overlap", "centre_share")
"""``corr``/``pt_j``/``pt_s``/``peak_overlap`` come from metrics.csv; ``centre_share`` is the
share of the readout carried by the centre hypercolumn (:func:`sacnn.analysis.centre_share`,
Fig. 7's centre dominance) and needs the model's weights."""
SCALES = ("absolute", "percent")
UNITS = {"corr": "r", "pt_j": "fraction", "pt_s": "fraction", "peak_overlap": "fraction",
         "centre_share": "share"}
"""The unit of an absolute effect per measure (PT and peak_overlap are fractions per neuron,
not the tables' percent)."""
MARGIN_KEYS = (*MEASURES, "percent")
"""Keys of ``claims.margins``: one per measure (its unit) and ``percent`` (percentage points,
every percent-scale effect)."""
PT_MEASURES = ("pt_j", "pt_s")


# ------------------------------------------------------------------------------ settings


def _need(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return mapping[key]
    except KeyError:
        raise ClaimError(f"claims spec: {where} has no {key!r} (the workflow's schema and "
                         "plan fill it in)") from None


@dataclass(frozen=True)
class Settings:
    """The spec's statistics settings, every one required (the schema gives the defaults)."""

    confidence: float
    alpha: float
    interval: str
    bootstrap: int
    permutations: int
    adjust: str
    seed: int
    margins: Mapping[str, float]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Settings:
        s = cls(**{k: _need(spec, k, "the spec") for k in cls.__dataclass_fields__})
        if s.interval not in stats.INTERVALS:
            raise ClaimError(f"claims.interval {s.interval!r}: expected one of "
                             f"{list(stats.INTERVALS)}")
        if s.adjust not in stats.ADJUSTMENTS:
            raise ClaimError(f"claims.adjust {s.adjust!r}: expected one of "
                             f"{list(stats.ADJUSTMENTS)}")
        missing = [k for k in MARGIN_KEYS if k not in s.margins]
        if missing:
            raise ClaimError(f"claims.margins: no margin for {missing}")
        return s


def _check_test(claim: Mapping[str, Any]) -> None:
    name = _need(claim, "claim", "a test")
    for key, allowed in (("measure", MEASURES), ("scale", SCALES)):
        value = _need(claim, key, f"test {name}")
        if value not in allowed:
            raise ClaimError(f"claims.tests {name}: {key} {value!r}, expected one of "
                             f"{list(allowed)}")
    for key in ("model", "versus", "surround_dependent", "seeds"):
        _need(claim, key, f"test {name}")


# ------------------------------------------------------------------ per-neuron tables

Component = tuple[str, str, int]
"""(site, fraction, sign): one (model - versus) term of a row's statistic."""


def components(claim: Mapping[str, Any], site: str, control: str | None = None
               ) -> list[Component]:
    """The terms of a row: ``fraction`` (+) and ``reference_fraction`` (-) on ``site``, and
    the same on ``control`` with the opposite signs for an interaction."""
    ref = claim.get("reference_fraction")
    fractions = [(claim.get("fraction", "f100"), 1), *([(ref, -1)] if ref else [])]
    sites = [(site, 1), *([(control, -1)] if control else [])]
    return [(s, f, a * b) for s, a in sites for f, b in fractions]


def _aligned(columns: dict[str, pd.Series]) -> pd.DataFrame:
    """Columns paired by neuron id (inner join), neurons with an undefined value left out."""
    series = list(columns.values())
    first = series[0].index
    if not all(s.index.equals(first) for s in series[1:]):
        return pd.concat(columns, axis=1, join="inner").astype(float).dropna()
    x = np.column_stack([s.to_numpy(dtype=float) for s in series])
    keep = ~np.isnan(x).any(axis=1)
    return pd.DataFrame(x[keep], index=first[keep], columns=list(columns))


def neuron_table(values: Values, claim: Mapping[str, Any], comps: Sequence[Component]
                 ) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Per-neuron ``m<i>``, ``v<i>`` (model and versus of component i), averaged over the
    claim's training seeds on the neurons defined in every seed; and each seed's own table.
    Seed k of a model is :func:`sacnn.experiment.replicate_name` (model, k)."""
    per_seed = []
    for k in range(1, int(claim["seeds"]) + 1):
        model, versus = replicate_name(claim["model"], k), replicate_name(claim["versus"], k)
        cols = {}
        for i, (site, fraction, _) in enumerate(comps):
            cols[f"m{i}"] = values.get(site, model, fraction, claim["measure"])
            cols[f"v{i}"] = values.get(site, versus, fraction, claim["measure"])
        per_seed.append(_aligned(cols))
    if len(per_seed) == 1:
        return per_seed[0], per_seed
    common = per_seed[0].index
    for table in per_seed[1:]:
        common = common.intersection(table.index, sort=False)
    mean = sum(t.loc[common] for t in per_seed) / len(per_seed)
    return mean, per_seed


# ------------------------------------------------------------------------ one row


def _percent_undefined(x: np.ndarray, comps: Sequence[Component], confidence: float) -> str:
    """Why a percent effect is undefined, or '': a versus mean of 0 (with every neuron or
    without one, as the jackknife leaves it out), or one whose t interval holds 0, so that
    the percentage of it could have any size and either sign."""
    versus = x[:, 1::2]
    sums = versus.sum(axis=0)
    if np.any(sums == 0) or np.any(sums[None, :] - versus == 0):
        return ("the versus model's values sum to 0 (or do so without one neuron): a "
                "percentage of 0 is undefined")
    lo, hi = stats.interval(stats.mean_of, versus.T[..., None], "t", confidence, n_boot=0,
                            rng=np.random.default_rng(0))
    for (site, fraction, _), a, b in zip(comps, lo, hi, strict=True):
        if a <= 0 <= b:
            return (f"the versus model's mean on {site} at {fraction} is not shown to differ "
                    f"from 0 (t interval [{a:.3g}, {b:.3g}]): a percentage of it could have "
                    "any size and either sign")
    return ""


def row_statistics(x: np.ndarray, comps: Sequence[Component], scale: str, measure: str,
                   settings: Settings, rng: np.random.Generator) -> dict[str, Any]:
    """Effect, SE, interval, p-value and floor of per-neuron data ``x`` (n x 2c: model and
    versus of each component); ``reason`` says why no verdict can be reached ('' if one
    can)."""
    signs = [c[2] for c in comps]
    n = len(x)
    out: dict[str, Any] = {"n": n, "effect": np.nan, "effect_sem": np.nan, "ci_low": np.nan,
                           "ci_high": np.nan, "p_value": np.nan, "p_floor": np.nan,
                           "test": "", "reason": ""}
    if n < 2:
        out["reason"] = f"only {n} neuron(s) with every value defined"
        return out
    if scale == "percent":
        out["reason"] = _percent_undefined(x, comps, settings.confidence)
        if out["reason"]:
            return out
        data, stat = x, stats.percent_statistic(signs)
    else:
        d = (x[:, 0::2] - x[:, 1::2]) @ np.asarray(signs, dtype=float)
        data, stat, nonzero = d[:, None], stats.mean_of, int(np.count_nonzero(d))
        out["p_value"], out["p_floor"], out["test"] = stats.sign_flip_test(
            d, settings.permutations, rng)
    out["effect"] = float(stat(data))
    out["effect_sem"] = float(stats.jackknife_se(stat, data))
    lo, hi = stats.interval(stat, data, settings.interval, settings.confidence,
                            n_boot=settings.bootstrap, rng=rng)
    out["ci_low"], out["ci_high"] = float(lo), float(hi)
    if scale == "percent":
        out["p_value"] = stats.jackknife_t_test(out["effect"], out["effect_sem"], n)
        out["p_floor"], out["test"] = 0.0, f"jackknife t ({n - 1} df)"
    if measure in PT_MEASURES and not np.any(x):
        out["reason"] = ("PT is 0 for both models in every neuron (no prediction reached "
                         "the top-image threshold at this scale)")
    elif out["p_floor"] >= settings.alpha:
        out["reason"] = (f"only {nonzero} neurons with a non-zero difference; the smallest p they "
                         f"can give is {out['p_floor']:.3g} (not below alpha "
                         f"{settings.alpha:g})")
    return out


def _seed_spread(per_seed: Sequence[pd.DataFrame], signs: Sequence[int], scale: str) -> float:
    """Standard deviation of the effect between training seeds (NaN with fewer than 2)."""
    stat = stats.percent_statistic(signs) if scale == "percent" else None
    effects = []
    for t in per_seed:
        x = t.to_numpy(dtype=float)
        if len(x):
            effects.append(float(stat(x)) if stat else
                           float(((x[:, 0::2] - x[:, 1::2]) @ np.asarray(signs)).mean()))
    effects = [e for e in effects if np.isfinite(e)]
    return float(np.std(effects, ddof=1)) if len(effects) > 1 else np.nan


def claim_row(claim: Mapping[str, Any], site: str, values: Values, settings: Settings, *,
              surround: str, control: str | None = None) -> dict[str, Any]:
    """One row of claims.csv before the family's adjustment (``reason`` not yet a verdict):
    the claim on ``site``, or its interaction with ``control``."""
    scale, measure = claim["scale"], claim["measure"]
    comps = components(claim, site, control)
    signs = [c[2] for c in comps]
    table, per_seed = neuron_table(values, claim, comps)
    x = table.to_numpy(dtype=float)
    rng = numpy_rng(settings.seed, "claims", claim["claim"], site, *([control] if control else []))
    ref = claim.get("reference_fraction") or ""
    if scale == "percent":
        unit = "percentage points" if ref or control else "percent"
    else:
        unit = UNITS[measure]
    return {
        "claim": claim["claim"], "statement": claim.get("statement", ""),
        "kind": "interaction" if control else "effect", "site": site,
        "site_surround": surround, "control_site": control or "", "measure": measure,
        "scale": scale, "model": claim["model"], "versus": claim["versus"],
        "fraction": claim.get("fraction", "f100"), "reference_fraction": ref,
        "n_seeds": int(claim["seeds"]),
        "mean_model": float(x[:, 0].mean()) if len(x) else np.nan,
        "mean_versus": float(x[:, 1].mean()) if len(x) else np.nan,
        "effect_unit": unit, "effect_seed_sd": _seed_spread(per_seed, signs, scale),
        "interval": settings.interval, "confidence": settings.confidence,
        **row_statistics(x, comps, scale, measure, settings, rng),
        "surround_dependent": bool(claim["surround_dependent"]),
        "margin": float(claim.get("margin") or settings.margins[
            "percent" if scale == "percent" else measure]),
    }


# --------------------------------------------------------------------- the family


def verdict_of(reason: str, p: float, lo: float, hi: float, alpha: float) -> str:
    if reason:
        return f"undetermined: {reason}"
    if p < alpha and lo > 0:
        return "supported"
    if p < alpha and hi < 0:
        return "contradicted"
    return "not shown"


def control_outcome(verdict: str, lo: float, hi: float, margin: float) -> str:
    """A control row's outcome: an undetermined row is no null, a shown effect is a
    violation, and a null is shown only by an interval inside (-margin, +margin)."""
    if verdict.startswith("undetermined"):
        return verdict
    if verdict in ("supported", "contradicted"):
        return "VIOLATED"
    if -margin < lo and hi < margin:
        return "null shown"
    return "inconclusive"


def decide(rows: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Adjust the family (every row with a p-value) and decide verdicts and controls on the
    adjusted p."""
    p = rows["p_value"].to_numpy(dtype=float)
    rows["adjust"] = settings.adjust
    rows["p_adjusted"] = stats.holm(p) if settings.adjust == "holm" else p
    rows["verdict"] = [verdict_of(r, q, lo, hi, settings.alpha) for r, q, lo, hi in zip(
        rows["reason"], rows["p_adjusted"], rows["ci_low"], rows["ci_high"], strict=True)]
    is_control = ((rows["kind"] == "effect") & rows["surround_dependent"]
                  & (rows["site_surround"] == NO_SURROUND))
    rows["control"] = [control_outcome(v, lo, hi, m) if c else "" for c, v, lo, hi, m in zip(
        is_control, rows["verdict"], rows["ci_low"], rows["ci_high"], rows["margin"],
        strict=True)]
    return rows


def evaluate(spec: Mapping[str, Any], values: Values | None = None) -> pd.DataFrame:
    """Every claim on every site it names, and the interaction of a surround-dependent claim
    with each control of a site that the claim also covers (``spec``: see :func:`main`;
    ``values``: the files of ``spec["sites"]`` unless given)."""
    settings = Settings.from_spec(spec)
    sites = _need(spec, "sites", "the spec")
    controls = _need(spec, "controls", "the spec")
    values = values if values is not None else SpecValues(sites)
    rows = []
    for claim in _need(spec, "tests", "the spec"):
        _check_test(claim)
        covered = list(claim.get("sites") or _need(spec, "default_sites", "the spec"))
        for site in covered:
            if site not in sites:
                raise ClaimError(f"claims.tests {claim['claim']}: site {site!r} has no inputs "
                                 f"in the spec (known {sorted(sites)})")
            rows.append(claim_row(claim, site, values, settings,
                                  surround=sites[site]["surround"]))
        if claim["surround_dependent"]:
            rows += [claim_row(claim, site, values, settings, surround=sites[site]["surround"],
                               control=c)
                     for site in covered for c in controls.get(site, []) if c in covered]
    df = pd.DataFrame(rows, columns=[*CLAIM_COLUMNS, "reason"])
    return decide(df, settings)[CLAIM_COLUMNS]


def family_reach(df: pd.DataFrame, alpha: float) -> dict[str, Any]:
    """Whether the table can decide anything at all. With Holm over ``rows`` tests, nothing
    is rejected unless some p is below ``alpha / rows`` (the first step): ``can_start`` counts
    the rows whose smallest possible p (``p_floor``) is below it. With none, no verdict of the
    table can be supported or contradicted, whatever the data: e.g. 35 sign-flip rows of 10
    neurons (floor 2 / 2^10 = 0.002 > 0.05 / 35 = 0.0014)."""
    tested = df[df["p_value"].notna()]
    rows = len(tested)
    holm = bool(rows) and (tested["adjust"] == "holm").all()
    first = alpha / rows if holm else alpha
    can_start = int((tested["p_floor"] < first).sum())
    floor = float(tested["p_floor"].min()) if rows else float("nan")
    return {"rows": rows, "first_threshold": first, "smallest_p_floor": floor,
            "can_start": can_start, "can_decide": can_start > 0}


def reach_text(reach: Mapping[str, Any]) -> str:
    """One line on :func:`family_reach` for the job's log."""
    head = f"{reach['rows']} tests adjusted together (first threshold {reach['first_threshold']:.3g})"
    if not reach["can_decide"]:
        return (f"NO VERDICT CAN BE REACHED: {head}, and the smallest p these neurons can give "
                f"is {reach['smallest_p_floor']:.3g}; more neurons (or fewer rows) are needed")
    return (f"{head}: {reach['can_start']} row(s) can reach the first threshold, and every "
            "later rejection needs an earlier one")


def read_claims(path: str | Path) -> pd.DataFrame:
    """A claims.csv, checked against :data:`CLAIM_COLUMNS`; empty text cells read ''."""
    text = ("control_site", "reference_fraction", "control")
    df = pd.read_csv(path, keep_default_na=True, dtype=dict.fromkeys(text, object))
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ClaimError(f"{path}: missing columns {missing}; written by an older sacnn: "
                         "delete it and run snakemake again")
    return df.fillna({c: "" for c in text})


def summary(df: pd.DataFrame) -> str:
    """A readable table: claim, site (- control), kind, effect, interval, p, adjusted p,
    verdict and control outcome."""
    site = [s if not c else f"{s} - {c}" for s, c in zip(df["site"], df["control_site"],
                                                         strict=True)]
    ci = [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)]
    out = pd.DataFrame({
        "claim": df["claim"], "site": site, "kind": df["kind"],
        "effect": df["effect"].map(lambda v: f"{v:.4g}"), "interval": ci,
        "p": df["p_value"].map(lambda v: f"{v:.3g}"),
        "p_adjusted": df["p_adjusted"].map(lambda v: f"{v:.3g}"),
        "verdict": df["verdict"].map(lambda v: v if len(v) <= 72 else v[:69] + "..."),
        "control": df["control"].map(lambda v: v.split(":")[0])})
    left = {c: f"{{:<{out[c].str.len().max()}}}".format for c in ("claim", "site", "verdict")
            if len(out)}
    return out.to_string(index=False, formatters=left, justify="left")


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.claims") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, type=json_object_argument,
                   help="JSON: tests, default_sites, confidence, alpha, interval, bootstrap, "
                        "permutations, adjust, seed, margins, controls {site: [sites]}, sites "
                        "{site: {surround, dataset, metrics {model: {fraction: path}}, "
                        "weights {model: {fraction: [paths]}}}}, provenance")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--meta", type=Path)
    args = p.parse_args(argv)
    spec = args.spec
    try:
        df = evaluate(spec)
    except ValueError as exc:
        raise SystemExit(f"sacnn.claims: error: {exc}") from None
    write_csv(df, args.out)
    reach = family_reach(df, float(spec["alpha"]))
    if args.meta:
        write_json({"code_version": code_version(), "spec": spec, "columns": CLAIM_COLUMNS,
                    "family_size": reach["rows"], "family_reach": reach}, args.meta)
    print(summary(df))
    print(reach_text(reach))
    return 0


if __name__ == "__main__":
    sys.exit(main())
