# The independence-testing benchmark (config key `independence`, benchmarks.independence):
# one job per method (an MI estimator of `estimators:` or a hyppo test), then tables and the
# power-curve plot.
from benchmarks.independence import LIBRARY_TESTS

INDEPENDENCE = config.get("independence") or {}
INDEPENDENCE_TABLES = ["independence_type1", "independence_power", "independence_seconds"]


def independence_outputs():
    if not INDEPENDENCE:
        return []
    return [f"{RESULTS}/tables/{t}.md" for t in INDEPENDENCE_TABLES] + [f"{RESULTS}/plots/power_curves.png"]


def _independence_entry(wc):
    return None if wc.method in LIBRARY_TESTS else estimator_entry(wc.method)


def _independence_module(wc):
    if wc.method in LIBRARY_TESTS:
        return "benchmarks.independence"
    return estimator_class(ESTIMATORS[wc.method]["estimator"]).__module__


rule independence_tests:
    """Every planned test (null and power) with one method."""
    input:
        unpack(lambda wc: {} if wc.method in LIBRARY_TESTS else weights_input(wc.method)),
    output:
        f"{RESULTS}/independence/tests-{{method}}.csv",
    params:
        entry=_independence_entry,
        study=INDEPENDENCE,
        code=lambda wc: code("independence_tests.py", "benchmarks.independence", "estimators.independence", _independence_module(wc)),
    threads: 1
    resources:
        mem_mb=4000,
        runtime="2h",
    log:
        f"{RESULTS}/logs/independence/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/independence/{{method}}.tsv"
    script:
        "../scripts/independence_tests.py"


rule independence_summary:
    """Type-I error and power tables, seconds per test, the power curves."""
    input:
        [f"{RESULTS}/independence/tests-{m}.csv" for m in INDEPENDENCE.get("methods", [])],
    output:
        **{
            t: report(f"{RESULTS}/tables/{t}.csv", caption=f"../report/tables/{t}.rst", category="Independence")
            for t in INDEPENDENCE_TABLES
        },
        md=[f"{RESULTS}/tables/{t}.md" for t in INDEPENDENCE_TABLES],
        tex=[f"{RESULTS}/tables/{t}.tex" for t in INDEPENDENCE_TABLES],
        png=report(f"{RESULTS}/plots/power_curves.png", caption="../report/plots/power_curves.rst", category="Independence"),
        pdf=f"{RESULTS}/plots/power_curves.pdf",
    params:
        study=INDEPENDENCE,
        code=code("independence_summary.py", "benchmarks.independence", "benchmarks.plots", "benchmarks.tables"),
    log:
        f"{RESULTS}/logs/independence_summary.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/independence_summary.py"
