# MIST design ablations (config key `ablation`): each variant trains with the same small
# budget and is scored on the IMD validation split only, never on the test corpora.
# Their own target, `snakemake --cores all ablations`: the paper's tables do not need them.
ABLATION = config.get("ablation") or {}


def ablation_outputs():
    if not ABLATION:
        return []
    return [f"{RESULTS}/tables/mist_ablation.{ext}" for ext in ("csv", "md", "tex")]


rule mist_ablation_variant:
    output:
        row=f"{RESULTS}/ablations/{{variant}}/row.json",
        weights=f"{RESULTS}/ablations/{{variant}}/weights.safetensors",
        card=f"{RESULTS}/ablations/{{variant}}/weights.json",
        log_csv=f"{RESULTS}/ablations/{{variant}}/loss.csv",
    params:
        steps=ABLATION.get("steps", 300),
        code=code("mist_ablation_variant.py"),
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime="1h",
    log:
        f"{RESULTS}/logs/ablations/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation/{{variant}}.tsv"
    script:
        "../scripts/mist_ablation_variant.py"


rule mist_ablation_table:
    input:
        expand(f"{RESULTS}/ablations/{{variant}}/row.json", variant=ABLATION.get("variants", [])),
    output:
        csv=report(f"{RESULTS}/tables/mist_ablation.csv", caption="../report/tables/mist_ablation.rst",
                   category="Tables"),
        md=f"{RESULTS}/tables/mist_ablation.md",
        tex=f"{RESULTS}/tables/mist_ablation.tex",
    params:
        code=code("mist_ablation_table.py"),
    log:
        f"{RESULTS}/logs/mist_ablation_table.log",
    script:
        "../scripts/mist_ablation_table.py"
