"""Ground truth and claims in one figure (results/figures/groundtruth.{pdf,png}).

(a) Recovery of the simulated truth, mean over neurons per site and model (rows) and measure
(columns, :data:`sacnn.groundtruth.GROUNDTRUTH_COLUMNS`; truths in the recording's units); a
cell that is undefined for that model (e.g. the attention columns of a model without
self-attention) reads "n/a" instead of a number. (b) Every row of claims.csv: the effect and
its interval in units of the row's margin, coloured by verdict; interaction rows (a site minus
its control) are diamonds, and a surround-dependent claim on a control site without surround
is drawn hollow with its control outcome (null shown, VIOLATED, inconclusive, undetermined).

``python -m sacnn.plots.groundtruth --groundtruth results/groundtruth.csv --claims
results/claims.csv --out-pdf ... --out-png ...`` (the workflow's ``groundtruth_figure`` rule).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from sacnn.claims import read_claims
from sacnn.groundtruth import read_groundtruth
from sacnn.plots._style import figure, panel_label, styled
from sacnn.provenance import code_version

RECOVERY = {
    "corr": "r recorded",
    "corr_truth": "r truth",
    "ceiling": "ceiling",
    "peak_overlap": "peak overlap",
    "truth_peak_overlap": "truth peak overlap",
    "aperture_corr": "aperture",
    "surround_mod_corr": "surround modulation",
    "attention_gate_corr": "attention~gate",
    "attention_surround_share": "attention surround share",
    "truth_top_overlap": "truth top-1% kept",
    "truth_suppression": "truth suppression",
    "truth_aperture_corr": "truth aperture~full",
}
"""Heat-map columns: groundtruth.csv column -> short header."""

VERDICT_COLOURS = {"supported": "#1b9e77", "contradicted": "#d95f02", "not shown": "#7570b3"}
UNDETERMINED = "#999999"


def recovery_means(gt: pd.DataFrame) -> pd.DataFrame:
    """Mean of each recovery measure per (site, model label), NaN where never defined."""
    rows = gt.assign(row=gt["site"] + " / " + gt["label"].astype(str))
    order = list(dict.fromkeys(rows["row"]))
    return rows.groupby("row", sort=False)[list(RECOVERY)].mean().reindex(order)


def control_tag(control: object) -> str:
    """What the label says of a control row's outcome ('' where the row is no control)."""
    if not isinstance(control, str) or not control:
        return ""
    if control.startswith("VIOLATED"):
        return " - control VIOLATED"
    return f" (control: {control.split(':')[0]})"


def claim_label(c: pd.Series) -> str:
    where = f"{c['site']} - {c['control_site']}" if c["kind"] == "interaction" else c["site"]
    return f"{c['claim']} [{c['measure']}] @ {where}"


def claims_panel(ax, claims: pd.DataFrame) -> None:
    """Each row's effect and interval in units of its margin (the paper's smallest claimed
    effect on that measure and scale), so that measures of different units share an axis and
    a control's null is shown exactly when its interval lies between the dashed lines.
    Interaction rows are diamonds, control rows hollow; the label gives the verdict and the
    control outcome."""
    y = np.arange(len(claims))[::-1]
    for yi, (_, c) in zip(y, claims.iterrows(), strict=True):
        verdict = str(c["verdict"])
        colour = VERDICT_COLOURS.get(verdict, UNDETERMINED)
        tag = control_tag(c["control"])
        if np.isfinite(c["effect"]):
            m = float(c["margin"])
            ax.errorbar(c["effect"] / m, yi, xerr=[[(c["effect"] - c["ci_low"]) / m],
                                                   [(c["ci_high"] - c["effect"]) / m]],
                        fmt="D" if c["kind"] == "interaction" else "o", color=colour,
                        mfc="white" if tag else colour, ms=4, capsize=2, lw=1)
        ax.text(1.01, yi, verdict.split(":")[0] + tag, transform=ax.get_yaxis_transform(),
                va="center", fontsize=6, color=colour)
    ax.axvline(0, color="black", lw=0.6)
    for x in (-1, 1):
        ax.axvline(x, color="0.5", lw=0.6, ls="--")
    ax.set_xscale("symlog", linthresh=1.0)  # linear inside the margins, logarithmic beyond
    ax.set_yticks(y, [claim_label(c) for _, c in claims.iterrows()])
    ax.set_xlabel("effect / margin, with its interval (model - versus; diamonds: site\n"
                  "minus its control; dashed: +-margin; logarithmic beyond)")
    ax.set_title("the paper's claims, per site")
    if claims.empty:
        ax.text(0.5, 0.5, "no claims configured", transform=ax.transAxes, ha="center")


def make(gt: pd.DataFrame, claims: pd.DataFrame) -> Figure:
    with styled():
        means = recovery_means(gt)
        n_claims = max(len(claims), 1)
        height = max(3.0, 0.22 * max(len(means), n_claims) + 1.6)
        # each recovery column gets room for its two-decimal value
        width_a, width_b = 3.0 + 0.5 * max(means.shape[1], 1), 7.0
        fig = figure(width_a + width_b, height)
        ax_a, ax_b = fig.subplots(1, 2, width_ratios=[width_a, width_b])
        sns.heatmap(means.rename(columns=RECOVERY), ax=ax_a, annot=False, cmap="vlag",
                    vmin=-1, vmax=1, center=0, cbar_kws={"label": "mean over neurons"},
                    linewidths=0.3, linecolor="white")
        # every cell says what it is: its value, or n/a where the measure is undefined
        for (i, j), v in np.ndenumerate(means.to_numpy(dtype=float)):
            ax_a.text(j + 0.5, i + 0.5, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center",
                      va="center", fontsize=6, color="0.5" if np.isnan(v) else "black")
        ax_a.set_ylabel("")
        ax_a.set_title("recovery of the simulated truth")
        for t in ax_a.get_xticklabels():
            t.set(rotation=40, ha="right", rotation_mode="anchor")
        panel_label(ax_a, "a")

        claims_panel(ax_b, claims)
        panel_label(ax_b, "b")
        return fig


def main(argv: list[str] | None = None, prog: str = "python -m sacnn.plots.groundtruth") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groundtruth", required=True, type=Path)
    p.add_argument("--claims", required=True, type=Path)
    p.add_argument("--out-pdf", type=Path)
    p.add_argument("--out-png", type=Path)
    args = p.parse_args(argv)
    try:
        gt, claims = read_groundtruth(args.groundtruth), read_claims(args.claims)
    except ValueError as exc:
        raise SystemExit(f"sacnn.plots.groundtruth: error: {exc}") from None
    fig = make(gt, claims)
    version = f"sacnn {code_version()}"
    sources = f"{args.groundtruth} {args.claims}"
    if args.out_pdf:
        fig.savefig(args.out_pdf, metadata={"Creator": version, "Keywords": sources,
                                            "CreationDate": None})
    if args.out_png:
        fig.savefig(args.out_png, dpi=150, metadata={"Software": version, "Source": sources})
    return 0


if __name__ == "__main__":
    sys.exit(main())
