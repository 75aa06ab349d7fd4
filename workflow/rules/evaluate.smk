from benchmarks.evaluate import PLOTS, TABLES


rule collect_estimates:
    """All estimate shards in one table; a missing shard or dataset is an error naming it."""
    input:
        list(estimate_files().values()),
    output:
        f"{RESULTS}/metrics/estimates.csv",
    params:
        files=estimate_files(),
        corpora=CORPORA,
        code=code("collect_estimates.py"),
    log:
        f"{RESULTS}/logs/collect_estimates.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect_estimates.tsv"
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/collect_estimates.py"


rule tables:
    input:
        f"{RESULTS}/metrics/estimates.csv",
    output:
        **{
            name: report(
                f"{RESULTS}/tables/{name}.csv",
                caption=f"../report/tables/{name}.rst",
                category="Tables",
            )
            for name in TABLES
        },
        md=[f"{RESULTS}/tables/{name}.md" for name in TABLES],
        tex=[f"{RESULTS}/tables/{name}.tex" for name in TABLES],
    params:
        evaluation=config.get("evaluation", {}),
        out=f"{RESULTS}/tables",
        code=code("tables.py"),
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables.tsv"
    resources:
        mem_mb=4000,
        runtime="30m",
    script:
        "../scripts/tables.py"


rule plots:
    input:
        f"{RESULTS}/metrics/estimates.csv",
    output:
        **{
            name: report(
                f"{RESULTS}/plots/{name}.png",
                caption=f"../report/plots/{name}.rst",
                category="Plots",
            )
            for name in PLOTS
        },
        # The same figures as vector PDF, for papers (the report shows the PNGs).
        **{f"{name}_pdf": f"{RESULTS}/plots/{name}.pdf" for name in PLOTS},
    params:
        out=f"{RESULTS}/plots",
        unit=config.get("evaluation", {}).get("unit", "nats"),
        code=code("plots.py"),
    log:
        f"{RESULTS}/logs/plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/plots.tsv"
    resources:
        mem_mb=4000,
        runtime="30m",
    script:
        "../scripts/plots.py"


rule config_used:
    """The resolved config, shown in the report next to what it produced."""
    output:
        report(f"{RESULTS}/config_used.yaml", caption="../report/config.rst", category="Configuration"),
    params:
        config=config,
    run:
        import yaml
        from estimators.atomic import write_text

        write_text(output[0], yaml.safe_dump(dict(params.config), sort_keys=False))
