"""Paper figures: one module per figure (``fig4.make(inputs, params) -> Figure``).

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no display, no
global figure state), so they render with any backend and never open a window.
"""


def report_labels(fig: str, fmt: str) -> dict[str, str]:
    """Labels of a figure's entry in the Snakemake report (``workflow/rules/figures.smk``).

    The report lists a category's entries sorted by their label texts, first label first
    (JavaScript ``localeCompare``), which puts ``fig10`` before ``fig1b``. ``no.`` is the
    figure's place in the paper, zero-padded, so the entries read fig1b, fig2, ..., fig10;
    ``format`` (pdf/png) is shown as a toggle.
    """
    from sacnn.experiment import FIGURE_NAMES

    if fig not in FIGURE_NAMES:
        raise ValueError(f"report_labels: {fig!r} is not a paper figure {FIGURE_NAMES}")
    return {"no.": f"{FIGURE_NAMES.index(fig) + 1:02d}", "figure": fig, "format": fmt}
