# One figure = one parameterised notebook (workflow/notebooks/<fig>.ipynb, a thin wrapper
# around sacnn.plots.<fig>.make) run with papermill from the working directory. The notebook
# and the plotting module are inputs, so editing one figure's code rebuilds that figure only;
# the shared plotting helpers (plots/_*.py) and sacnn.analysis are inputs of every figure.


rule figure:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            "results/figures/{fig}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "format": "pdf"},
        ),
        png=report(
            "results/figures/{fig}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "format": "png"},
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
    shell:
        "python -m papermill {input.notebook:q} {output.notebook:q} --cwd . --log-output"
        " -r inputs_json {params.inputs:q} -r params_json {params.settings:q}"
        " -r out_pdf {output.pdf:q} -r out_png {output.png:q} > {log} 2>&1"
