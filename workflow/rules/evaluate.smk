rule evaluate:
    input:
        list(estimate_files().values()),
    output:
        manifest=f"{RESULTS}/evaluation.json",
    params:
        files=estimate_files(),
        corpora=CORPORA,
        evaluation=config.get("evaluation", {}),
        config=config,
        out=RESULTS,
    log:
        f"{RESULTS}/logs/evaluate.log",
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/evaluate.py"
