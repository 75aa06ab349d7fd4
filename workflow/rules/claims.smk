# The MIST paper's claims measured on this run's estimates (benchmarks.claims): a table with one row
# per claim and the sample-efficiency plot. Cheap (it reads the collected estimates), so in `all`.
CLAIMS_OUTPUTS = [f"{RESULTS}/tables/claims.md", f"{RESULTS}/plots/sample_efficiency.png"]


rule claims_table:
    input:
        f"{RESULTS}/metrics/estimates.csv",
    output:
        csv=report(f"{RESULTS}/tables/claims.csv", caption="../report/tables/claims.rst", category="Claims"),
        md=f"{RESULTS}/tables/claims.md",
        tex=f"{RESULTS}/tables/claims.tex",
        png=report(
            f"{RESULTS}/plots/sample_efficiency.png", caption="../report/plots/sample_efficiency.rst", category="Claims"
        ),
        pdf=f"{RESULTS}/plots/sample_efficiency.pdf",
    params:
        code=code("claims.py", "benchmarks.claims"),
    log:
        f"{RESULTS}/logs/claims.log",
    resources:
        mem_mb=4000,
        runtime="15m",
    script:
        "../scripts/claims.py"
