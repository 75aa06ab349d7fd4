# MINDE's self-consistency tests on sklearn's digits (config key `consistency`,
# benchmarks.consistency): the corpus, every configured method on it, the table and the plot.
# Outside `all`: the `consistency` target in the Snakefile runs it.
CONSISTENCY = config.get("consistency") or {}
CONSISTENCY_TABLE = "consistency_summary"


def consistency_outputs():
    if not CONSISTENCY:
        return []
    return [f"{RESULTS}/tables/{CONSISTENCY_TABLE}.md", f"{RESULTS}/plots/consistency.png"]


rule consistency_corpus:
    output:
        f"{RESULTS}/corpora/consistency.npz",
    params:
        consistency=CONSISTENCY,
        code=code("consistency.py", "benchmarks.consistency"),
    log:
        f"{RESULTS}/logs/consistency_corpus.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/consistency.py"


rule consistency_estimates:
    input:
        unpack(lambda wc: {"corpus": f"{RESULTS}/corpora/consistency.npz", **weights_input(wc.method)}),
    output:
        f"{RESULTS}/consistency/estimates-{{method}}.csv",
    params:
        entry=lambda wc: estimator_entry(wc.method),
        code=lambda wc: code(
            "consistency.py",
            "benchmarks.consistency",
            "benchmarks.runner",
            estimator_class(ESTIMATORS[wc.method]["estimator"]).__module__,
        ),
    threads: 1
    log:
        f"{RESULTS}/logs/consistency/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/consistency/{{method}}.tsv"
    resources:
        mem_mb=4000,
        runtime="1h",
    script:
        "../scripts/consistency.py"


rule consistency_summary:
    input:
        [f"{RESULTS}/consistency/estimates-{m}.csv" for m in CONSISTENCY.get("methods", [])],
    output:
        csv=report(
            f"{RESULTS}/tables/{CONSISTENCY_TABLE}.csv",
            caption=f"../report/tables/{CONSISTENCY_TABLE}.rst",
            category="Self-consistency",
        ),
        md=f"{RESULTS}/tables/{CONSISTENCY_TABLE}.md",
        tex=f"{RESULTS}/tables/{CONSISTENCY_TABLE}.tex",
        png=report(f"{RESULTS}/plots/consistency.png", caption="../report/plots/consistency.rst", category="Self-consistency"),
        pdf=f"{RESULTS}/plots/consistency.pdf",
    params:
        consistency=CONSISTENCY,
        unit=config.get("evaluation", {}).get("unit", "nats"),
        code=code("consistency.py", "benchmarks.consistency", "benchmarks.plots", "benchmarks.tables"),
    log:
        f"{RESULTS}/logs/consistency_summary.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/consistency.py"
