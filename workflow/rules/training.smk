# One job per (site, model, data fraction, neuron chunk). An incremental stage reads the
# weights of the stage it starts from for the same site, fraction and chunk.


rule train_chunk:
    input:
        dataset="results/{site}/dataset.nc",
        init=init_weights,
    output:
        weights="results/{site}/models/{model}/{fraction}/chunk{chunk}/weights.pt",
        predictions="results/{site}/models/{model}/{fraction}/chunk{chunk}/predictions.nc",
    log:
        "results/logs/train/{site}/{model}/{fraction}/chunk{chunk}.log",
    # Wall time, peak memory and CPU of the job: size the cluster's resources from real runs.
    benchmark:
        "results/benchmarks/train/{site}/{model}/{fraction}/chunk{chunk}.tsv"
    conda:
        "../envs/sacnn.yaml"
    threads: TRAIN_RESOURCES["threads"]
    resources:
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
        gpu=TRAIN_RESOURCES["gpu"],
    params:
        # Only the config sections this model depends on (a rerun trigger).
        settings=train_settings,
        fraction=fraction_share,
        chunk_size=model_chunk_size,
        init=init_weights_arg,
        # The training code (sacnn.provenance.code_digest): editing it retrains.
        code=PLAN.code("train"),
        # Not an output: Snakemake would delete it when a job fails, and it is what lets a
        # killed or failed job resume from its last epoch (the trainer removes it on success).
        checkpoint="results/{site}/models/{model}/{fraction}/chunk{chunk}/checkpoint.pt",
    shell:
        "python -m sacnn.training --settings {params.settings:q} --dataset {input.dataset:q}"
        " --site {wildcards.site} --model {wildcards.model} --fraction {params.fraction}"
        " --chunk {wildcards.chunk} --chunk-size {params.chunk_size} {params.init}"
        " --weights {output.weights:q} --predictions {output.predictions:q}"
        " --checkpoint {params.checkpoint:q} --workers {threads} --gpus {resources.gpu}"
        " > {log} 2>&1"
