"""The search for a hosting capacity: where chargers go (placements, phases), the power at each bus, and the
doubling-then-bisection search for the largest number within limits, one row at a time (``capacity``) or many in
lockstep (``lockstep``), each row taking exactly the steps the single search would; what binds over placements."""

from __future__ import annotations

import collections

import numpy as np

from v2g_testbed.analysis.hosting.checks import WholeNetworkCheck
from v2g_testbed.sims import PHASES
from v2g_testbed.sims.fleet import draw_phases
from v2g_testbed.sims.fleet import phase_shares as fleet_phase_shares


def phase_shares(rng: np.random.Generator, n: int, phase: str | None, bus_phase: np.ndarray | None = None,
                 order: np.ndarray | None = None) -> np.ndarray:
    """Share of each of n chargers' power on phases a, b, c: a third each for a three-phase charger
    (``phase`` None); for a single-phase one all on its phase: ``a``/``b``/``c``, ``round_robin``, ``random``,
    or ``same_as_load``: ``bus_phase[order[k]]`` (0-2, or -1 for a bus without a single-phase load, where
    chargers take the phases in turn)."""
    if phase is None:  # a third on each phase, as the fleet simulator's three-phase row
        return np.repeat(fleet_phase_shares(["abc"]), n, axis=0)
    if phase == "same_as_load":
        which = bus_phase[order[:n]]
        return fleet_phase_shares([PHASES[w] for w in np.where(which >= 0, which, np.arange(n) % 3)])
    return fleet_phase_shares(draw_phases(rng, n, phase))  # the fleet simulator's own placement


def powers(order: np.ndarray, shares: np.ndarray, n: int, n_buses: int, kw: float) -> np.ndarray:
    """kW per bus and phase of chargers 0..n-1 (each at bus ``order[k]``, split by ``shares[k]``)."""
    return np.stack([np.bincount(order[:n], weights=shares[:n, j], minlength=n_buses) for j in range(3)], axis=1) * kw


def capacity(feeder: WholeNetworkCheck, order: np.ndarray, shares: np.ndarray, charger_kw: float, sign: int, n_max: int) -> dict:
    """Largest N (chargers 0..N-1 of ``order``, indices into the feeder's buses, on phases ``shares``)
    within limits."""
    def powers_at(n):
        return powers(order, shares, n, len(feeder.buses), sign * charger_kw)

    base = feeder.check(powers_at(0))
    if base is not None:
        return {"chargers": 0, "binding": base, "note": "limits already broken with no chargers"}
    lo, hi, bad = 0, 1, None
    while hi <= n_max and (bad := feeder.check(powers_at(hi))) is None:
        lo, hi = hi, hi * 2
    if hi > n_max:
        hi = n_max + 1
        if (bad := feeder.check(powers_at(n_max))) is None:
            return {"chargers": n_max, "binding": None, "note": f"no limit reached up to {n_max} chargers"}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = feeder.check(powers_at(mid))
        lo, hi, bad = (mid, hi, bad) if found is None else (lo, mid, found)
    return {"chargers": lo, "binding": bad}


def lockstep(test, rows: int, n_max: int) -> list[dict]:
    """``capacity``'s search (check 0, double, cap at ``n_max``, bisect) for many rows at once, each row
    taking exactly the steps ``capacity`` would: ``test(row_indices, n_per_row)`` returns the rows'
    ``Violations``."""
    lo, hi = np.zeros(rows, np.int64), np.ones(rows, np.int64)
    stage = np.zeros(rows, np.int8)  # 0 base, 1 doubling, 2 cap at n_max, 3 bisection, 4 done
    BASE, DOUBLE, CAP, BISECT, DONE = range(5)
    first_bad = {}  # row -> (Violations, position) of its binding violation
    note = np.zeros(rows, np.int8)  # 1: broken with no chargers, 2: no limit up to n_max
    while (active := np.flatnonzero(stage < DONE)).size:
        st = stage[active]
        n = np.select([st == BASE, st == DOUBLE, st == CAP], [0, hi[active], n_max], (lo[active] + hi[active]) // 2)
        found = test(active, n)
        ok = found.ok

        def keep(mask):  # remember the violation of these rows
            for pos in np.flatnonzero(mask):
                first_bad[int(active[pos])] = (found, int(pos))

        # stage 0: broken with no chargers -> done (0); else start doubling
        m = st == BASE
        keep(m & ~ok)
        note[active[m & ~ok]] = 1
        stage[active[m & ~ok]] = DONE
        stage[active[m & ok]] = DOUBLE
        # doubling: ok -> double (beyond n_max: check n_max); violation -> bisect
        m = st == DOUBLE
        r = active[m & ok]
        lo[r], hi[r] = hi[r], hi[r] * 2
        over = r[hi[r] > n_max]
        hi[over], stage[over] = n_max + 1, CAP
        keep(m & ~ok)
        stage[active[m & ~ok]] = BISECT
        # cap: ok -> n_max; violation -> bisect
        m = st == CAP
        r = active[m & ok]
        lo[r], note[r], stage[r] = n_max, 2, DONE
        keep(m & ~ok)
        stage[active[m & ~ok]] = BISECT
        # bisection
        m = st == BISECT
        lo[active[m & ok]] = n[m & ok]
        hi[active[m & ~ok]] = n[m & ~ok]
        keep(m & ~ok)
        ends = (stage == BISECT) & (hi - lo <= 1)
        stage[ends] = DONE
    out = []
    for r in range(rows):
        found, pos = first_bad.get(r, (None, None))
        binding = found.dict(pos) if found is not None else None
        if note[r] == 1:
            out.append({"chargers": 0, "binding": binding, "note": "limits already broken with no chargers"})
        elif note[r] == 2:
            out.append({"chargers": int(n_max), "binding": None, "note": f"no limit reached up to {n_max} chargers"})
        else:
            out.append({"chargers": int(lo[r]), "binding": binding})
    return out


def binding_summary(runs: list[dict]) -> tuple[str, str]:
    """The limit that binds most often over the placements, and where it binds most often *with that limit*:
    limit and element come from the same placements (a limit and an element taken separately could name,
    e.g., a voltage unbalance on a line)."""
    pairs = [(r["binding"]["limit"], r["binding"]["element"]) if r["binding"] else ("none", "-") for r in runs]
    common = _most_common([limit for limit, _ in pairs])
    return common, _most_common([e for limit, e in pairs if limit == common])


def _most_common(values: list[str]) -> str:
    """The most frequent value; ties go to the first in sorted order (never to hash order)."""
    counts = collections.Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))
