# Gather a model's chunks into one predictions file and score every neuron.


rule evaluate_model:
    input:
        dataset="results/{site}/dataset.nc",
        chunks=gather_inputs,
    output:
        predictions="results/{site}/models/{model}/{fraction}/predictions.nc",
        metrics="results/{site}/models/{model}/{fraction}/metrics.csv",
    log:
        "results/logs/evaluate/{site}/{model}/{fraction}.log",
    localrule: True
    conda:
        "../envs/sacnn.yaml"
    params:
        label=model_label,
        code=PLAN.code("evaluate"),
    shell:
        "python -m sacnn.evaluation --dataset {input.dataset:q} --site {wildcards.site}"
        " --model {wildcards.model} --label {params.label:q} --fraction {wildcards.fraction}"
        " --out-predictions {output.predictions:q} --out-metrics {output.metrics:q}"
        " {input.chunks:q} > {log} 2>&1"
