# The conditional-MI corpus (config key `cmi`, benchmarks.cmi): Gaussian (X, Y, Z) with analytic
# CMI, every configured method on it, and the error table.
CMI = config.get("cmi") or {}
CMI_TABLE = "cmi_summary"


def cmi_outputs():
    return [f"{RESULTS}/tables/{CMI_TABLE}.md"] if CMI else []


rule cmi_corpus:
    output:
        f"{RESULTS}/corpora/cmi.npz",
    params:
        cmi=CMI,
        code=code("cmi.py", "benchmarks.cmi", "estimators.synthetic.cmi_tasks"),
    log:
        f"{RESULTS}/logs/cmi_corpus.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/cmi.py"


rule cmi_estimates:
    input:
        unpack(lambda wc: {"corpus": f"{RESULTS}/corpora/cmi.npz", **weights_input(wc.method)}),
    output:
        f"{RESULTS}/cmi/estimates-{{method}}.csv",
    params:
        entry=lambda wc: estimator_entry(wc.method),
        code=lambda wc: code(
            "cmi.py",
            "benchmarks.cmi",
            "estimators.conditional",
            estimator_class(ESTIMATORS[wc.method]["estimator"]).__module__,
        ),
    threads: 1
    log:
        f"{RESULTS}/logs/cmi/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cmi/{{method}}.tsv"
    resources:
        mem_mb=4000,
        runtime="1h",
    script:
        "../scripts/cmi.py"


rule cmi_summary:
    input:
        [f"{RESULTS}/cmi/estimates-{m}.csv" for m in CMI.get("methods", [])],
    output:
        csv=report(f"{RESULTS}/tables/{CMI_TABLE}.csv", caption=f"../report/tables/{CMI_TABLE}.rst", category="Conditional MI"),
        md=f"{RESULTS}/tables/{CMI_TABLE}.md",
        tex=f"{RESULTS}/tables/{CMI_TABLE}.tex",
    params:
        unit=config.get("evaluation", {}).get("unit", "nats"),
        code=code("cmi.py", "benchmarks.cmi", "benchmarks.tables"),
    log:
        f"{RESULTS}/logs/cmi_summary.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/cmi.py"
