"""Bad input to the public API, across the whole registry: what each estimator does.

    python -m devbench.bad_input_table            # Markdown table on stdout
    python -m devbench.bad_input_table --only ksg gaussian

A printer: the cases (`CASES`), the classifier and the outcome kinds (rejected, finite,
failed; CRASH, SILENT-NONFINITE, HANG are bugs) live in `estimators.testing`, which
`tests/test_bad_input.py` and `check_estimator` use too.
"""

from __future__ import annotations

import argparse

import estimators
from estimators.testing import CASES, expected_ok, run_case


def _short(out) -> str:
    if out.kind == "rejected":
        return "ValueError"
    if out.kind == "finite":
        return out.detail
    return out.kind


def table(names: list[str]) -> str:
    """Markdown: one row per input, one column per estimator, then the messages."""
    head = "| input | expected | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    bad, notes = [], []
    for case in CASES:
        cells, messages = [], {}
        for name in names:
            out = run_case(name, case)
            ok = out.kind == "n/a" or expected_ok(case, out)
            if not ok:
                bad.append(f"{case.key} × {name}: {out.cell(300)}")
            if out.kind in ("rejected", "failed", "n/a") or not ok:
                messages.setdefault(out.cell(200), []).append(name)
            cells.append(_short(out) if ok else f"**{out.kind}**")
        expected = f"ValueError /{case.reject}/" if case.reject else "finite, or failed + reason"
        lines.append(f"| {case.what} | {expected} | " + " | ".join(cells) + " |")
        for msg, who in messages.items():
            who_s = "all" if len(who) == len(names) else ", ".join(who)
            notes.append(f"- {case.what} ({who_s}): {msg}")
    lines += [
        "",
        "finite = an ok estimate (value in nats); failed = an Estimate with ok=False and a reason; "
        "ValueError = raised by our validation, message below.",
        "",
        f"{len(CASES)} inputs × {len(names)} estimators; unexpected outcomes: {len(bad)}",
    ]
    lines += [f"- UNEXPECTED {b}" for b in bad]
    lines += ["", "Messages:"] + notes
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="estimator names (default: the whole registry)")
    args = ap.parse_args(argv)
    names = args.only or estimators.available()
    print(table(names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
