"""The convergence tracker's plateau stop: a run whose checks stop improving ends, and the best
check's generator is the one kept (see docs/slicegan.md, "Stopping when converged")."""

from microlib_gui.core.slicegan.convergence import Tracker


def _feed(tracker, errors, every=250):
    stops = []
    for i, e in enumerate(errors):
        stops.append(tracker.add((i + 1) * every, {"vf_error": e, "sa_error": e / 2, "s2_error": 0.5}))
        if stops[-1]:  # the run ends at its stop
            break
    return stops


def test_stops_after_plateau_checks_without_a_better_one():
    t = Tracker(tol=0.03, s2_tol=0.02, patience=2, min_iters=0, plateau=3)
    stops = _feed(t, [0.20, 0.10, 0.12, 0.11, 0.15, 0.05])
    assert stops == [False, False, False, False, True]
    assert t.stop_reason == "plateau" and t.stopped_at == 1250 and t.converged_at is None
    assert t.best_iteration == 500
    assert "no better check in the last 3" in t.stop_message() and "best at iteration 500" in t.stop_message()


def test_no_plateau_stop_before_min_iters_or_when_off():
    t = Tracker(tol=0.03, s2_tol=0.02, patience=2, min_iters=2000, plateau=2)
    assert not any(_feed(t, [0.2, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3]))  # last check at 1750 < 2000
    t = Tracker(tol=0.03, s2_tol=0.02, patience=2, min_iters=0, plateau=0)
    assert not any(_feed(t, [0.2, 0.1] + [0.3] * 20))


def test_converged_wins_and_is_reported_as_such():
    t = Tracker(tol=0.03, s2_tol=0.6, patience=2, min_iters=0, plateau=5)
    stops = _feed(t, [0.2, 0.02, 0.01])
    assert stops == [False, False, True]
    assert t.stop_reason == "converged" and t.converged_at == 750
    assert t.stop_message() == "converged at iteration 750"


def test_state_round_trip_keeps_the_stop():
    t = Tracker(tol=0.03, s2_tol=0.02, patience=2, min_iters=0, plateau=2)
    _feed(t, [0.1, 0.2, 0.2])
    u = Tracker(tol=0.03, s2_tol=0.02, patience=2, min_iters=0, plateau=2)
    u.load(t.state())
    assert (u.stop_reason, u.stopped_at, u.best_iteration) == ("plateau", 750, 250)
