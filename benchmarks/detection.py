"""Detection benchmark: every scenario of tests/scenarios/, expected vs found.

    python benchmarks/detection.py                 # every case (~2-3 min, 2 CPUs)
    python benchmarks/detection.py --case vanishing --case healthy_cnn
    python benchmarks/detection.py --oracle        # also run the independent oracles

Prints, per case, the expected kinds, the kinds gradtrace found, the step of
the first expected detection (and the steps per epoch, to compare with
anchors that check once per epoch), then precision and recall over finding
kinds: a true positive is an expected kind found; a false negative an
expected kind missed; a false positive a kind found that the case neither
expects nor allows (timing kinds count only where a case expects one: they
depend on the machine's load).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    from tests.scenarios import programs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", choices=list(programs.CASES))
    p.add_argument("--oracle", action="store_true", help="run the oracles too")
    args = p.parse_args(argv)
    print("$ " + shlex.join(["python", "benchmarks/detection.py", *(argv or [])]))

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    names = args.case or list(programs.CASES)
    rows = []
    tp = fn = fp = 0
    t_all = time.perf_counter()
    for name in names:
        case = programs.CASES[name]
        t0 = time.perf_counter()
        history = programs.run_case(case)
        secs = time.perf_counter() - t0
        findings = history.findings
        kinds = {f.kind for f in findings}
        counted = kinds - (programs.TIMING_KINDS - case.expected)
        tp += len(case.expected & kinds)
        fn += len(case.expected - kinds)
        fp += len(counted - case.expected - case.allowed)
        firsts = [f for f in findings if f.kind in case.expected]
        first = min((f.step for f in firsts), default=None)
        steps_per_epoch = history.params.get("steps") if history.params else None
        oracle = ""
        if args.oracle and case.oracle is not None:
            try:
                oracle = "ok: " + case.oracle()
            except AssertionError as e:
                oracle = f"FAILED: {e}"
        problems = programs.judge(case, history)
        rows.append(
            (
                name,
                ", ".join(sorted(case.expected)) or "-",
                _kinds(findings),
                "-" if first is None else f"{first} (of {steps_per_epoch}/epoch)",
                f"{secs:.1f}",
                "pass" if not problems else "FAIL: " + "; ".join(problems),
                oracle,
            )
        )
        print(f"  ran {name} in {secs:.1f} s", file=sys.stderr, flush=True)
    head = ("scenario", "expected", "found", "first detection step", "s", "verdict")
    if args.oracle:
        head += ("oracle",)
    rows = [r[: len(head)] for r in rows]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    healthy = [n for n in names if programs.CASES[n].healthy]
    print(
        f"\nprecision {precision:.2f} ({tp} true / {fp} false positives), "
        f"recall {recall:.2f} ({tp} found / {fn} missed) over {len(names)} "
        f"scenarios ({len(healthy)} healthy); {time.perf_counter() - t_all:.0f} s"
    )
    return 0 if fn == 0 and fp == 0 else 1


def _kinds(findings) -> str:
    """'dead_relu x3, non_finite' (one entry per kind, in order of first finding)."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in counts.items()) or "-"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
