# Raw data: simulate a site (embedded default) or read the reference layout, then ingest it
# into the canonical dataset (docs/data-format.md).


rule simulate_site:
    output:
        train_img="resources/{site}/train_img_{site}.npy",
        train_rsp="resources/{site}/trainRsp_{site}.npy",
        val_img="resources/{site}/val_img_{site}.npy",
        val_rsp="resources/{site}/valRsp_{site}.npy",
        options="resources/{site}/site.yaml",
        truth="resources/{site}/truth_{site}.nc",
    log:
        "results/logs/simulate/{site}.log",
    wildcard_constraints:
        site=wildcard_alternatives(PLAN.simulated_sites()),
    conda:
        "../envs/sacnn.yaml"
    params:
        settings=simulate_args,
        code=PLAN.code("simulate"),
    shell:
        "python -m sacnn.simulate resources/{wildcards.site} --site {wildcards.site}"
        " {params.settings} > {log} 2>&1"


rule ingest_site:
    input:
        raw_inputs,
    output:
        "results/{site}/dataset.nc",
    log:
        "results/logs/ingest/{site}.log",
    conda:
        "../envs/sacnn.yaml"
    params:
        raw=site_raw_dir,
        files=site_files,
        options=ingest_options,
        code=PLAN.code("ingest"),
    shell:
        "python -m sacnn.data ingest {params.raw:q} {params.files:q} --out {output:q}"
        " --options-json {params.options:q} > {log} 2>&1"
