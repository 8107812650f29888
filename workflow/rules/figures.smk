# One figure = one parameterised notebook (workflow/notebooks/<fig>.ipynb, a thin wrapper
# around sacnn.plots.<fig>.make) run with papermill from the working directory. The `code`
# param digests the notebook and sacnn.plots.<fig> with everything it imports, so editing one
# figure's code rebuilds that figure only, and shared code (plots/_*.py, sacnn.analysis)
# every figure that uses it.

# report_labels: the report lists fig1b, fig2, ..., fig10 in the paper's order
from sacnn.plots import report_labels


rule figure:
    input:
        figure_inputs,
    output:
        pdf=report(
            "results/figures/{fig}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: report_labels(wildcards.fig, "pdf", FIGURES),
        ),
        png=report(
            "results/figures/{fig}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels=lambda wildcards: report_labels(wildcards.fig, "png", FIGURES),
        ),
        notebook="results/notebooks/{fig}.ipynb",
    log:
        "results/logs/figures/{fig}.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        inputs=figure_inputs_json,
        settings=figure_params_json,
        code=lambda wildcards: PLAN.figure_code(wildcards.fig),
        notebook=notebook_path,
    shell:
        "python -m papermill {params.notebook:q} {output.notebook:q} --cwd . --log-output"
        " -r inputs_json {params.inputs:q} -r params_json {params.settings:q}"
        " -r out_pdf {output.pdf:q} -r out_png {output.png:q} > {log} 2>&1"
