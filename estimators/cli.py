"""Estimate MI from a CSV or .npy file.

    mi-estimate data.csv --x 0,1 --y 2 --estimator ksg --param k=5
    mi-estimate data.npy --x 0:3 --y 3:6 --estimator mist_qr --json
    mi-estimate data.csv --x group,age --y score --estimator mist --discrete group
    mi-estimate data.csv --x a --y b --z c,d --estimator ksg          # I(a; b | c, d)
    mi-estimate data.csv --x a --y b --estimator mist --permutations 999   # test of independence
    mi-matrix data.csv --estimator mist --unit bits > matrix.csv
    mi-estimate data.csv --x a --y b --unit bits

Columns are 0-based indices, ranges `a:b` (b exclusive), or CSV header names.
`--discrete` names the categorical columns (each one of --x or --y) with the same syntax, or
`none`; by default (`auto`) integer columns with few distinct values are categorical. Only
estimators that can treat columns as categorical (mist, mist_qr) accept a column list.
`--unit bits` reports the estimate (and its interval) in bits instead of nats.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from estimators.units import UNITS


def _load(path: Path, header: bool) -> tuple[np.ndarray, list[str] | None]:
    if not path.is_file():
        raise ValueError(f"input file not found: {path}")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2:
            raise ValueError(f"{path} must hold a 2-D array (rows = samples), got shape {arr.shape}")
        return arr, None
    import pandas as pd

    df = pd.read_csv(path, header=0 if header else None)
    nonnum = [c for c in df.columns if not np.issubdtype(df[c].dtype, np.number)]
    if nonnum:
        raise ValueError(f"non-numeric column(s) in {path}: {nonnum}")
    return df.to_numpy(dtype=np.float64), [str(c) for c in df.columns] if header else None


def _columns(spec: str, names: list[str] | None, ncol: int, what: str) -> list[int]:
    cols: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if ":" in part:
            a, b = part.split(":")
            cols.extend(range(int(a or 0), int(b) if b else ncol))
        elif part.lstrip("-").isdigit():
            cols.append(int(part))
        elif names is not None and part in names:
            cols.append(names.index(part))
        else:
            raise ValueError(f"--{what}: unknown column {part!r}" + (f"; columns: {names}" if names else ""))
    bad = [c for c in cols if not -ncol <= c < ncol]
    if bad or not cols:
        raise ValueError(f"--{what}: column index out of range {bad} for {ncol} columns")
    return cols


def _discrete(spec: str, names: list[str] | None, ncol: int, x_cols: list[int], y_cols: list[int]):
    """`--discrete` as the estimators' spec: "auto", or the pair (x positions, y positions) of the
    named file columns within x and y ((False, False) for `none`)."""
    if spec.strip().lower() in ("auto", "none"):
        return "auto" if spec.strip().lower() == "auto" else (False, False)
    x_cols, y_cols = [c % ncol for c in x_cols], [c % ncol for c in y_cols]
    in_x, in_y = set(), set()
    for c in _columns(spec, names, ncol, "discrete"):
        c %= ncol
        if c not in x_cols and c not in y_cols:
            label = f"{names[c]!r} ({c})" if names else str(c)
            raise ValueError(f"--discrete: column {label} is in neither --x nor --y")
        in_x.update(j for j, xc in enumerate(x_cols) if xc == c)
        in_y.update(j for j, yc in enumerate(y_cols) if yc == c)
    return sorted(in_x), sorted(in_y)


def _param(s: str) -> tuple[str, object]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"--param must be key=value, got {s!r}")
    k, v = s.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def main(argv: list[str] | None = None) -> int:
    import estimators

    ap = argparse.ArgumentParser(
        prog="mi-estimate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("file", type=Path, help="CSV (with header unless --no-header) or .npy file")
    ap.add_argument("--x", required=True, help="columns of x")
    ap.add_argument("--y", required=True, help="columns of y")
    ap.add_argument("--estimator", default="ksg", help="registered name (see --list)")
    ap.add_argument("--param", action="append", type=_param, default=[], help="estimator parameter key=value")
    ap.add_argument(
        "--discrete",
        default="auto",
        metavar="COLS",
        help="categorical columns (names or indices, each in --x or --y), 'none', or 'auto' (default: "
        "integer columns with few distinct values)",
    )
    ap.add_argument(
        "--unit", default="nats", choices=UNITS, help="unit of the estimate and its interval (default: nats)"
    )
    ap.add_argument("--z", default=None, metavar="COLS", help="condition on these columns: I(x; y | z)")
    ap.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="B",
        help="test independence of x and y with B permutations (prints the p-value)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the permutations (with --permutations)")
    ap.add_argument("--no-header", action="store_true", help="the CSV has no header row")
    ap.add_argument("--json", action="store_true", help="print the full estimate as JSON")
    ap.add_argument("--list", action="store_true", help="list the registered estimators and exit")
    if argv is None and "--list" in sys.argv[1:]:
        print("\n".join(estimators.available()))
        return 0
    args = ap.parse_args(argv)
    try:
        data, names = _load(args.file, header=not args.no_header)
        x_cols = _columns(args.x, names, data.shape[1], "x")
        y_cols = _columns(args.y, names, data.shape[1], "y")
        discrete = _discrete(args.discrete, names, data.shape[1], x_cols, y_cols)
        x, y = data[:, x_cols], data[:, y_cols]
        if args.z is not None and args.permutations:
            raise ValueError("--z and --permutations do not combine (a conditional test is not offered)")
        if args.permutations:
            res = estimators.independence_test(
                x,
                y,
                args.estimator,
                permutations=args.permutations,
                seed=args.seed,
                params=dict(args.param),
                discrete=discrete,
                unit=args.unit,
            )
            return _print_test(res, args.json)
        if args.z is not None:
            if discrete != "auto":
                raise ValueError("--discrete does not combine with --z")
            z = data[:, _columns(args.z, names, data.shape[1], "z")]
            est = estimators.conditional_mi(x, y, z, args.estimator, args.unit, **dict(args.param))
        else:
            est = estimators.get(args.estimator, **dict(args.param)).estimate(x, y, discrete=discrete, unit=args.unit)
    except ValueError as err:
        print(f"mi-estimate: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(est.to_dict(), default=str))
    else:
        line = f"{'CMI' if args.z is not None else 'MI'} = {est.mi:.6g} {est.unit}"
        if est.lower is not None and est.upper is not None:
            level = est.info.get("interval_level")
            line += f"  [{est.lower:.6g}, {est.upper:.6g}]" + (f" ({level:.0%} interval)" if level else "")
        if est.info.get("quantity") == "sliced_mi":
            line += "  (sliced MI, not MI)"
        print(line)
    return 0 if est.ok else 1


def _print_test(res, as_json: bool) -> int:
    if as_json:
        out = {k: v for k, v in vars(res).items() if k != "null"}
        out["null_quantiles"] = {str(q): v for q, v in res.null_quantiles.items()}
        print(json.dumps(out, default=str))
    else:
        print(res.summary())
    return 0 if res.ok else 1


def matrix_main(argv: list[str] | None = None) -> int:
    """`mi-matrix`: the MI between every pair of columns of a CSV or .npy file, as CSV on stdout."""
    import estimators

    ap = argparse.ArgumentParser(prog="mi-matrix", description=matrix_main.__doc__)
    ap.add_argument("file", type=Path, help="CSV (with header unless --no-header) or .npy file")
    ap.add_argument("--columns", default=None, help="columns to use (names, indices, ranges a:b; default: all)")
    ap.add_argument("--estimator", default="mist", help="registered name (default: mist)")
    ap.add_argument("--param", action="append", type=_param, default=[], help="estimator parameter key=value")
    ap.add_argument("--unit", default="nats", choices=UNITS)
    ap.add_argument("--no-header", action="store_true", help="the CSV has no header row")
    args = ap.parse_args(argv)
    try:
        data, names = _load(args.file, header=not args.no_header)
        cols = (
            list(range(data.shape[1]))
            if args.columns is None
            else _columns(args.columns, names, data.shape[1], "columns")
        )
        import pandas as pd

        labels = [names[c] if names else str(c) for c in cols]
        frame = pd.DataFrame(data[:, cols], columns=labels)
        m = estimators.mi_matrix(frame, args.estimator, params=dict(args.param), unit=args.unit)
    except ValueError as err:
        print(f"mi-matrix: error: {err}", file=sys.stderr)
        return 2
    m.to_csv(sys.stdout, float_format="%.6g")
    return 0


if __name__ == "__main__":
    sys.exit(main())
