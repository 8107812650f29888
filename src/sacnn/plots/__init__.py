"""Paper figures: one module per figure (``fig4.make(inputs, params) -> Figure``).

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no display, no
global figure state), so they render with any backend and never open a window.
"""

from collections.abc import Sequence


def report_labels(fig: str, fmt: str, figures: Sequence[str]) -> dict[str, str]:
    """Labels of a figure's entry in the Snakemake report (``workflow/rules/figures.smk``).

    The report lists a category's entries sorted by their label texts, first label first
    (JavaScript ``localeCompare``), which puts ``fig10`` before ``fig1b``. ``no.`` is the
    figure's place in ``figures`` (the run's figures in the matrix's order, the paper's),
    zero-padded, so the entries read fig1b, fig2, ..., fig10; ``format`` (pdf/png) is shown
    as a toggle.
    """
    if fig not in figures:
        raise ValueError(f"report_labels: {fig!r} is not a figure of this run {list(figures)}")
    return {"no.": f"{list(figures).index(fig) + 1:02d}", "figure": fig, "format": fmt}
