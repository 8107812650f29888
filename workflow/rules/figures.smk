# One figure = one parameterised notebook (workflow/notebooks/<fig>.ipynb, a thin wrapper
# around sacnn.plots.<fig>.make) run with papermill from the working directory. The `code`
# param digests the notebook and sacnn.plots.<fig> with everything it imports, so editing one
# figure's code rebuilds that figure only, and shared code (plots/_*.py, sacnn.analysis)
# every figure that uses it.


rule figure:
    input:
        figure_inputs,
    output:
        pdf=report(
            "results/figures/{fig}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels=figure_labels_pdf,
        ),
        png=report(
            "results/figures/{fig}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels=figure_labels_png,
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
        code=figure_code,
        notebook=notebook_path,
    shell:
        "python -m papermill {params.notebook:q} {output.notebook:q} --cwd . --log-output"
        " -r inputs_json {params.inputs:q} -r params_json {params.settings:q}"
        " -r out_pdf {output.pdf:q} -r out_png {output.png:q} > {log} 2>&1"
