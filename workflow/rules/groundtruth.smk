# Ground truth and the paper's claims: trained models against a simulated site's truth
# (sacnn.groundtruth) and the paper's comparisons as paired tests over neurons on every site
# (sacnn.claims); both summarised in one figure (sacnn.plots.groundtruth). The per-site truth
# jobs and the claims (centre_share runs the networks) are cluster jobs; gathering and the
# figure run locally.


rule groundtruth_site:
    input:
        unpack(groundtruth_site_inputs),
    output:
        "results/{site}/groundtruth.csv",
    log:
        "results/logs/groundtruth/{site}.log",
    wildcard_constraints:
        site=wildcard_alternatives(GROUNDTRUTH_SITES),
    conda:
        "../envs/sacnn.yaml"
    params:
        spec=groundtruth_site_spec,
        code=PLAN.code("groundtruth"),
    shell:
        "python -m sacnn.groundtruth site --site {wildcards.site} --truth {input.truth:q}"
        " --dataset {input.dataset:q} --spec {params.spec:q} --out {output:q} > {log} 2>&1"


rule groundtruth:
    input:
        expand("results/{site}/groundtruth.csv", site=GROUNDTRUTH_SITES),
    output:
        csv=report(
            "results/groundtruth.csv",
            caption="../report/groundtruth.rst",
            category="Ground truth and claims",
        ),
        meta="results/groundtruth.json",
    log:
        "results/logs/groundtruth/all.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        provenance=groundtruth_provenance,
        code=PLAN.code("groundtruth"),
    shell:
        "python -m sacnn.groundtruth gather {input:q} --out {output.csv:q}"
        " --meta {output.meta:q} --provenance {params.provenance:q} > {log} 2>&1"


rule claims:
    input:
        claims_inputs,
    output:
        csv=report(
            "results/claims.csv",
            caption="../report/claims.rst",
            category="Ground truth and claims",
        ),
        meta="results/claims.json",
    log:
        "results/logs/claims.log",
    conda:
        "../envs/sacnn.yaml"
    params:
        spec=claims_spec,
        code=PLAN.code("claims"),
    shell:
        "python -m sacnn.claims --spec {params.spec:q} --out {output.csv:q}"
        " --meta {output.meta:q} > {log} 2>&1"


rule groundtruth_figure:
    input:
        groundtruth="results/groundtruth.csv",
        claims="results/claims.csv",
    output:
        pdf=report(
            "results/figures/groundtruth.pdf",
            caption="../report/groundtruth_figure.rst",
            category="Ground truth and claims",
            labels={"figure": "groundtruth", "format": "pdf"},
        ),
        png=report(
            "results/figures/groundtruth.png",
            caption="../report/groundtruth_figure.rst",
            category="Ground truth and claims",
            labels={"figure": "groundtruth", "format": "png"},
        ),
    log:
        "results/logs/figures/groundtruth.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        code=PLAN.code("groundtruth-figure"),
    shell:
        "python -m sacnn.plots.groundtruth --groundtruth {input.groundtruth:q}"
        " --claims {input.claims:q} --out-pdf {output.pdf:q} --out-png {output.png:q}"
        " > {log} 2>&1"
