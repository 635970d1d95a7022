"""Real-world benchmark: the DeepLocalize programs (Stack Overflow, GitHub),
buggy and fixed, through gradtrace.fit, beside the published verdicts.

    python benchmarks/realworld.py                  # all 41 programs (~10 min, 2 CPUs)
    python benchmarks/realworld.py --only "SO 31880720" --only G#3
    python benchmarks/realworld.py --markdown       # the README's table

Per program: the findings of the buggy and of the fixed version, whether the
buggy one is *identified* (a finding of one of the kinds that name its real
problem, `Program.expect`), the first step (and epoch) of that finding, and
whether the fixed one is clean (no finding at all; timing kinds — slow_step,
input_bound, retracing — are shown but not counted: they depend on this
machine's load). Beside them: DeepDiagnosis' Table 6 verdicts
(../shared/data/deepdiagnosis/table6.csv: UM = UMLAUT, DL = DeepLocalize,
AT = AUTOTRAINER, DD = DeepDiagnosis). Programs whose benchmark label is not
a training-dynamics bug (`not_dynamics`) are scored on staying quiet; a
program that cannot run offline counts as not identified.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KINDS = {"slow_step", "input_bound", "retracing"}
TOOLS = ("UM", "DL", "AT", "DD")


def published() -> dict[str, dict[str, str]]:
    """program id ("SO <post>" / "G#n") -> tool -> "Yes"/"No"/"" (not run)."""
    from benchmarks.realworld import data

    path = os.path.join(data.SHARED, "data", "deepdiagnosis", "table6.csv")
    out = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if int(row["no"]) > 41:
                break
            name = row["program"]
            pid = name if name.startswith("G#") else f"SO {name}"
            out[pid] = {t: row[f"identify_{t}"].strip().capitalize() for t in TOOLS}
    return out


def programs():
    from benchmarks.realworld import github, stackoverflow_a, stackoverflow_b

    return stackoverflow_a.PROGRAMS + stackoverflow_b.PROGRAMS + github.PROGRAMS


def run_one(build) -> dict:
    """Trains one version through gradtrace.fit; its findings and times."""
    import keras

    import gradtrace

    keras.backend.clear_session()
    run = build()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as logdir:
        h = gradtrace.fit(
            run.model,
            run.x,
            run.y,
            **run.fit,
            verbose=0,
            logdir=logdir,
            config=gradtrace.Config(console=False),
        )
    seconds = time.perf_counter() - t0
    epoch_of = {t.step: t.epoch for t in h.step_times}
    found = [
        (f.kind, f.layer, f.step, epoch_of.get(f.step), f.message) for f in h.findings
    ]
    return {"findings": found, "seconds": seconds, "steps": len(h.step_times)}


def judge(p, buggy, fixed) -> dict:
    kinds_b = {k for k, *_ in buggy["findings"]} - TIMING_KINDS if buggy else set()
    kinds_f = {k for k, *_ in fixed["findings"]} - TIMING_KINDS if fixed else set()
    hits = [f for f in (buggy["findings"] if buggy else []) if f[0] in p.expect]
    first = min(hits, key=lambda f: f[2]) if hits else None
    return {
        "identified": bool(hits) and not p.not_dynamics,
        "quiet_ok": (not kinds_b) if p.not_dynamics else None,
        "first": first,
        "clean": not kinds_f,
        "kinds_b": kinds_b,
        "kinds_f": kinds_f,
    }


def _kinds(res) -> str:
    if res is None:
        return "not run"
    ks = []
    for k, layer, step, _, _ in res["findings"]:
        if k in TIMING_KINDS:
            continue
        ks.append(f"{k}@{step}" + (f" ({layer})" if layer else ""))
    return ", ".join(ks) or "-"


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="program id, e.g. 'SO 31880720'")
    ap.add_argument("--markdown", action="store_true", help="one markdown table")
    args = ap.parse_args(argv)
    print("$ " + shlex.join(["python", "benchmarks/realworld.py", *(argv or [])]))

    import warnings

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("gradtrace").setLevel(logging.ERROR)

    table = published()
    progs = [p for p in programs() if not args.only or p.id in args.only]
    rows = []
    t_all = time.perf_counter()
    for p in progs:
        if p.offline or p.buggy is None:
            buggy = fixed = None
        else:
            buggy = run_one(p.buggy)
            fixed = run_one(p.fixed) if p.fixed is not None else None
        v = judge(p, buggy, fixed)
        rows.append((p, buggy, fixed, v))
        if not args.markdown:
            first = v["first"]
            where = f"step {first[2]} (epoch {first[3]})" if first else "-"
            verdict = (
                ("quiet" if v["quiet_ok"] else "NOT QUIET")
                if p.not_dynamics
                else ("IDENTIFIED" if v["identified"] else "missed")
            )
            print(
                f"{p.id:<12} {verdict:<10} first {where:<18} "
                f"fixed {'clean' if v['clean'] else 'FINDINGS'}  "
                f"[{(buggy or {}).get('seconds', 0):.1f}+"
                f"{(fixed or {}).get('seconds', 0):.1f} s]\n"
                f"    buggy: {_kinds(buggy)}\n    fixed: {_kinds(fixed)}",
                flush=True,
            )
    total = time.perf_counter() - t_all
    print()
    print(_markdown(rows, table))
    print()
    print(_summary(rows, table, total))
    return 0


def _markdown(rows, table) -> str:
    head = (
        "| program | real problem | gradtrace on buggy | identified (first step, "
        "epoch) | gradtrace on fixed | UM | DL | AT | DD |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    out = [head]
    for p, buggy, fixed, v in rows:
        pub = table.get(p.id, {})
        if p.offline:
            ident = f"not run: {p.offline}"
        elif p.not_dynamics:
            ident = "n/a, quiet" if v["quiet_ok"] else "n/a, NOT quiet"
        elif v["identified"]:
            f = v["first"]
            ident = f"**yes** ({f[2]}, {f[3]})"
        else:
            ident = "no"
        fixed_cell = "clean" if v["clean"] else _kinds(fixed)
        if p.fixed_note and not v["clean"]:
            fixed_cell += " (true: the fix keeps the problem)"
        bug = (
            _short(p.bug) if not p.not_dynamics else "not a dynamics bug (see the port)"
        )
        out.append(
            f"| {p.id} | {bug} | {_kinds(buggy)} | {ident} | {fixed_cell} | "
            + " | ".join(pub.get(t, "") or "-" for t in TOOLS)
            + " |"
        )
    return "\n".join(out)


def _short(text: str, n: int = 110) -> str:
    """The first clause of a program's bug line, at most n characters."""
    text = text.split("; fix")[0].split(" (fix")[0]
    return text if len(text) <= n else text[: text.rfind(" ", 0, n)] + " …"


def _summary(rows, table, total) -> str:
    def count(pred, group=None):
        return sum(
            1
            for p, b, f, v in rows
            if (group is None or p.id.startswith(group)) and pred(p, v)
        )

    lines = []
    for group, name in (("SO", "Stack Overflow"), ("G#", "GitHub"), (None, "all")):
        n = count(lambda p, v: True, group)
        if not n:
            continue
        ident = count(lambda p, v: v["identified"], group)
        quiet = count(lambda p, v: bool(p.not_dynamics) and v["quiet_ok"], group)
        nd = count(lambda p, v: bool(p.not_dynamics), group)
        pubs = {
            t: sum(
                1
                for p, *_ in rows
                if (group is None or p.id.startswith(group))
                and table.get(p.id, {}).get(t) == "Yes"
            )
            for t in TOOLS
        }
        lines.append(
            f"{name}: gradtrace identified {ident} of {n} "
            f"({nd} labelled bugs are not dynamics bugs; quiet on {quiet} of them); "
            + ", ".join(f"{t} {pubs[t]}" for t in TOOLS)
        )
    healthy = [(p, v) for p, b, f, v in rows if f is not None and not p.fixed_note]
    clean = sum(1 for p, v in healthy if v["clean"])
    lines.append(
        f"fixed versions that are really healthy: {clean} of {len(healthy)} clean "
        f"(no finding; timing kinds not counted)"
    )
    firsts = [v["first"][3] for p, b, f, v in rows if v["first"] is not None]
    if firsts:
        lines.append(
            f"identified in the first epoch: {sum(1 for e in firsts if e == 0)} of "
            f"{len(firsts)}"
        )
    lines.append(f"wall time {total:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
