"""Bar charts of mean PT_J and PT_S with SEM error bars, one row per site (Fig. 5 and 6), and
beside them the scale-free peak overlap (our check, not a panel of the paper)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sacnn.analysis import pt_summary
from sacnn.plots import _io, _style

MEASURES = {"pt_j": "PT$_J$ (%)", "pt_s": "PT$_S$ (%)",
            "peak_overlap": "peak overlap (%)\nscale-free, not in the paper"}
"""metrics.csv column -> y label; the first two are the paper's panels."""

#: why a panel whose bars are all 0 shows nothing: for PT no prediction reached the threshold,
#: for the overlap no prediction's top k held a recorded top image
EMPTY = {"pt_j": "no prediction reached its neuron's\ntop-{k} threshold: PT = 0 is below",
         "pt_s": "no prediction reached its neuron's\ntop-{k} threshold: PT = 0 is below",
         "peak_overlap": "no prediction's top {k} held a\nrecorded top-{k} image: 0 is below"}


def pt_bars(inputs: dict[str, Any], params: dict[str, Any], name: str) -> Figure:
    """PT_J, PT_S and the peak overlap (left to right) in percent, mean over neurons +- SEM,
    per site (rows)."""
    sites = _io.sites(params, name)
    models = _io.models(params, name)
    frame = _io.metrics(inputs, name, sites, models, params.get("fraction"),
                        required=tuple(MEASURES))
    summary = pt_summary(frame, tuple(MEASURES)).set_index(["site", "model", "measure"])
    colours = _style.model_colours(models)
    x = np.arange(len(models))
    with _style.styled():
        fig = _style.figure((0.55 * len(models) + 1.5) * len(MEASURES),
                            2.0 * len(sites) + 0.4)
        axes = fig.subplots(len(sites), len(MEASURES), squeeze=False)
        for r, site in enumerate(sites):
            for c, (measure, ylabel) in enumerate(MEASURES.items()):
                ax = axes[r, c]
                rows = [summary.loc[(site, m, measure)] for m in models]
                means = [row["mean"] for row in rows]
                sems = [row["sem"] for row in rows]
                ax.bar(x, means, yerr=sems, capsize=2, color=[colours[m] for m in models],
                       edgecolor="0.2", lw=0.5, error_kw={"lw": 0.8})
                top = np.nanmax(np.add(means, np.nan_to_num(sems)), initial=0.0)
                for xi, v, e, row in zip(x, means, sems, rows, strict=True):
                    # the mean and the top images it is made of (hits / neurons x k)
                    reach = f"{int(row['hits'])}/{int(row['chances'])}"
                    ax.text(xi, np.nansum([v, e]), f"{v:.1f}\n{reach}", ha="center",
                            va="bottom", fontsize=5.5)
                if not any(row["hits"] for row in rows):
                    chances = max(int(row["chances"]) for row in rows)
                    ax.text(0.5, 0.55, EMPTY[measure].format(k=int(rows[0]["k"])) + "\n"
                            f"this resolution ({100 / max(chances, 1):.1f} %)\n"
                            "and does not rank the models", transform=ax.transAxes,
                            ha="center", va="center", fontsize=6, color="0.25")
                ax.set_xticks(x, [_io.label(params, m) for m in models], rotation=30,
                              ha="right")
                ax.set_ylabel(ylabel)
                n, k = int(rows[0]["n"]), int(rows[0]["k"])
                ax.set_title(f"{site} ({n} neurons, top k = {k})" if c == 0 else site)
                ax.set_ylim(0, max(1.0, 1.15 * float(top)))
        fig.suptitle("Peak tuning indices PT$_J$, PT$_S$ (the paper's; they move with the "
                     "prediction's scale) and, right, the peak overlap (scale-free check, not "
                     "in the paper): mean over neurons ± SEM; under each: top images reached / "
                     "neurons x k", fontsize=7)
    return fig
