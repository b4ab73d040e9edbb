"""Replay convergence-stop rules on the check histories of finished runs (issue 22).

``bench/quality_study.py`` keeps every check of a run (iteration, vf / surface-area / S2 errors
of the check volume) in its ``results.jsonl``. This feeds those histories, check by check, to the
app's own :class:`microlib_gui.core.slicegan.convergence.Tracker` with other settings (plateau,
patience, tolerance) and reports where each rule would have stopped and which check's generator
it would have kept. Where a rule keeps the same check as the run did, its generator — and so its
quality — is the run's, and the iterations saved are exact; where it keeps another check, only
the check volume's errors of that one are known. A rule that would run past the run's last check
cannot be replayed ("beyond").

    python bench/replay_stop.py RESULTS.jsonl [...] [--plateau 3,4,5,6] [--patience 2] [--tol 0.03]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from microlib_gui.core.slicegan.convergence import Tracker  # noqa: E402
from microlib_gui.core.slicegan.presets import get_preset  # noqa: E402


def replay(history: list[dict], tol: float, s2_tol: float, patience: int, min_iters: int, plateau: int,
           cap: int) -> dict:
    """Where the rule stops on this history: iteration, reason and the kept check."""
    t = Tracker(tol, s2_tol, patience, min_iters, plateau)
    for h in history:
        if t.add(h["iteration"], h):
            return {"stop": t.stopped_at, "reason": t.stop_reason, "best": t.best_iteration, "best_check": t.best}
    last = history[-1]["iteration"] if history else 0
    if last >= cap:
        return {"stop": cap, "reason": "cap", "best": t.best_iteration, "best_check": t.best}
    return {"stop": None, "reason": "beyond", "best": None, "best_check": None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--plateau", default="3,4,5,6")
    ap.add_argument("--patience", default="2")
    ap.add_argument("--tol", default="0.03")
    a = ap.parse_args(argv)
    p = get_preset("microlib")
    rows = []
    for f in a.results:
        rows += [json.loads(x) for x in Path(f).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r.get("convergence")]
    print("| run | as run: stop (reason, kept) | rule | stop (reason, kept) | same generator | iterations saved | "
          "kept check vf / SA |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        name = r["image"] + (f" {r['tag']}" if r.get("tag") else "")
        given = dict(kv.split("=", 1) for kv in filter(None, (r.get("set") or "").split(",")))
        cap = int(given.get("iters", 5000))
        for plateau, patience, tol in itertools.product(map(int, a.plateau.split(",")), map(int, a.patience.split(",")),
                                                        map(float, a.tol.split(","))):
            res = replay(r["convergence"], tol, p.converge_s2_tol, patience, p.converge_min_iters, plateau, cap)
            rule = f"plateau {plateau}, patience {patience}, tol {tol:g}"
            if res["reason"] == "beyond":
                print(f"| {name} | {r['iterations']} ({r.get('stop_reason') or 'cap'}, {r['best_iteration']}) | {rule} "
                      "| beyond the run | | | |")
                continue
            same = res["best"] == r["best_iteration"]
            saved = r["iterations"] - res["stop"]
            b = res["best_check"] or {}
            print(f"| {name} | {r['iterations']} ({r.get('stop_reason') or 'cap'}, {r['best_iteration']}) | {rule} | "
                  f"{res['stop']} ({res['reason']}, {res['best']}) | {'yes' if same else 'no'} | {saved} | "
                  f"{100 * b.get('vf_error', 0):.1f} / {100 * b.get('sa_error', 0):.1f} % |")


if __name__ == "__main__":
    main()
