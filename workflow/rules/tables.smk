# The paper's tables from the per-neuron metrics (sacnn.tables), each with a JSON sidecar
# recording the config, the code version, the seeds and the input files. The report shows
# each table laid out as the paper prints it (results/tables/<table>.html: sites as column
# groups, CORR. +- SEM, delta %, PT %; sacnn.table_html) and offers the full CSV under
# "Tables as CSV".


rule table:
    input:
        table_inputs,
    output:
        csv=report(
            "results/{table}.csv",
            caption="../report/table.rst",
            category="Tables as CSV",
            labels={"table": "{table}"},
        ),
        html=report(
            "results/tables/{table}.html",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        meta="results/{table}.json",
    log:
        "results/logs/tables/{table}.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        spec=table_spec,
        code=PLAN.code("tables"),
    shell:
        "python -m sacnn.tables table --spec {params.spec:q} --out {output.csv:q}"
        " --meta {output.meta:q} --html {output.html:q} > {log} 2>&1"


rule parameter_table:
    output:
        csv=report(
            "results/tables/parameters.csv",
            caption="../report/parameters.rst",
            category="Tables as CSV",
            labels={"table": "parameters"},
        ),
        html=report(
            "results/tables/parameters.html",
            caption="../report/parameters.rst",
            category="Tables",
            labels={"table": "parameters"},
        ),
    log:
        "results/logs/tables/parameters.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        spec=parameter_spec(),
        code=PLAN.code("tables"),
    shell:
        "python -m sacnn.tables parameters --spec {params.spec:q} --out {output.csv:q}"
        " --html {output.html:q} > {log} 2>&1"
