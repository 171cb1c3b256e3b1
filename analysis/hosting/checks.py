"""Checks of the grid's limits with chargers added: ``WholeNetworkCheck`` runs a pandapower power flow of the whole
network per check (balanced or unbalanced, any network, Q(U) iterated) and judges every element of it;
``GroupCheck`` solves one supply group cut out of the network (``subnetwork``), many placements at once, by the
batch power flow. Both name the worst violation the same way (ties to the first element in the network's table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from v2g_testbed.analysis.limits import Limits
from v2g_testbed.sims import PHASES
from v2g_testbed.sims.grid import run_power_flow, set_loads


# Elements within this of the worst are equally worst (series sections carrying one current, buses at one
# voltage): the first in the network's table is named, so two solvers (pandapower's Newton-Raphson to 1e-8 MVA,
# the subnetwork's Z-bus iteration to 1e-10 pu) name the same element.
VOLTAGE_TIE_PU = 1e-7
LOADING_TIE_PCT = 1e-5
Q_U_ITERATIONS = 20  # Q(U): power flows until the chargers' reactive power settles


def _first_max_rows(values: np.ndarray, tie: float) -> np.ndarray:
    """``_first_max`` of each row (NaN ignored; a row of NaN gives 0)."""
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1)
        return np.argmax(values >= (top - tie)[:, None], axis=1)


class Violations:
    """The worst violation of each row of a batch: ``kind`` (-1 none, 0-3 ``GroupCheck.KINDS``, 4 no convergence),
    the element (position in its table) and the value, kept as arrays; ``dict(r)`` as ``WholeNetworkCheck.check`` gives it."""

    def __init__(self, kind, element, value, check):
        self.kind, self.element, self.value, self.check = kind, element, value, check

    @property
    def ok(self) -> np.ndarray:
        return self.kind < 0

    def dict(self, r: int) -> dict | None:
        check = self.check[r] if isinstance(self.check, list) else self.check
        return check.describe(int(self.kind[r]), int(self.element[r]), float(self.value[r]))

    def merge(self, other: "Violations") -> "Violations":
        """Row by row, this one's violation, or where it has none the other's (two supply groups of one fleet)."""
        mine = [self.check] * len(self.kind) if not isinstance(self.check, list) else self.check
        theirs = [other.check] * len(other.kind) if not isinstance(other.check, list) else other.check
        take = self.ok
        return Violations(np.where(take, other.kind, self.kind), np.where(take, other.element, self.element),
                          np.where(take, other.value, self.value), [t if w else m for m, t, w in zip(mine, theirs, take)])


def _first_max(values: np.ndarray, tie: float) -> int:
    """Position of the first value within ``tie`` of the largest (NaN ignored)."""
    return int(np.flatnonzero(values >= np.nanmax(values) - tie)[0])


class WholeNetworkCheck:
    """Power flows of the whole network with chargers added at one feeder's buses (one load per bus, reused): every
    bus, line and transformer of the network is checked, not only the feeder's."""

    def __init__(self, net, buses: list[int], limits: dict, unbalanced: bool = False, solver: str = "pandapower",
                 reactive: dict | None = None):
        import pandapower as pp

        self.pp, self.net, self.unbalanced, self.solver, self.reactive = pp, net, unbalanced, solver, reactive
        self.limits = Limits.of(limits)
        v_min, v_max = self.limits.band(net.bus.vn_kv)
        self.v_min, self.v_max = pd.Series(v_min, net.bus.index), pd.Series(v_max, net.bus.index)
        self.buses = np.asarray(buses)
        if unbalanced:
            self.loads = np.array([pp.create_asymmetric_load(net, bus=int(b), name=f"hc-{b}") for b in buses])
        else:
            self.loads = np.array([pp.create_load(net, bus=int(b), p_mw=0.0, name=f"hc-{b}") for b in buses])
        self.flows = 0
        self._recycle = False

    def _set(self, kw: np.ndarray, q_kvar=0.0):
        set_loads(self.net, self.loads, kw, q_kvar, self.unbalanced)

    def _bus_voltage(self) -> np.ndarray:
        """Voltage at the chargers' buses after the last power flow (mean of the phases if unbalanced)."""
        if self.unbalanced:
            return self.net.res_bus_3ph[[f"vm_{p}_pu" for p in PHASES]].mean(axis=1).reindex(self.buses).to_numpy()
        return self.net.res_bus.vm_pu.reindex(self.buses).to_numpy()

    def voltages(self) -> dict[str, np.ndarray]:
        """Bus voltages of the last power flow: '' -> pu (balanced), or ' phase a' ... per phase."""
        if self.unbalanced:
            return {f" phase {p}": self.net.res_bus_3ph[f"vm_{p}_pu"] for p in PHASES}
        return {"": self.net.res_bus.vm_pu}

    def check(self, kw: np.ndarray) -> dict | None:
        """None if every limit holds with these charger powers (kW per bus and phase, + import); else
        the first violation. With reactive power by Q(U), power flows repeat until it settles."""
        from v2g_testbed.sims.reactive import reactive_kvar

        p = kw.sum(axis=1)
        q_u = self.reactive is not None and self.reactive["mode"] == "q_u"
        v = self._bus_voltage() if q_u and self._recycle else np.ones(len(p))
        q = reactive_kvar(p, v, self.reactive, np.abs(p)) if self.reactive else 0.0
        for _ in range(Q_U_ITERATIONS if q_u else 1):
            self._set(kw, q)
            self.flows += 1
            try:
                run_power_flow(self.net, self.unbalanced, self._recycle, self.solver)
                self._recycle = True
            except self.pp.powerflow.LoadflowNotConverged:
                self._recycle = False
                return {"limit": "convergence", "element": "-", "value": None}
            if q_u:
                new = reactive_kvar(p, self._bus_voltage(), self.reactive, np.abs(p))
                settled = np.abs(new - q).max() < 1e-6
                q = new
                if settled:
                    break
        lim, net = self.limits, self.net
        worst = []
        for phase, vm in self.voltages().items():
            for excess, limit in ((vm - self.v_max, "voltage above"), (self.v_min - vm, "voltage below")):
                if (excess > 0).any():
                    i = excess.index[_first_max(excess.to_numpy(), VOLTAGE_TIE_PU)]
                    worst.append((float(excess.max()), limit, f"bus {net.bus.at[i, 'name']}{phase}", float(vm[i])))
        suffix = "_3ph" if self.unbalanced else ""
        if self.unbalanced:
            vuf = net.res_bus_3ph.unbalance_percent
            if (vuf > lim.unbalance_pct).any():
                worst.append((float(vuf.max() - lim.unbalance_pct) / 100, "voltage unbalance",
                              f"bus {net.bus.at[vuf.idxmax(), 'name']}", float(vuf.max())))
        for table, res, label in ((net.line, net[f"res_line{suffix}"], "line"),
                                  (net.trafo, net[f"res_trafo{suffix}"], "transformer")):
            if len(table) and (res.loading_percent > lim.loading_pct).any():
                i = res.index[_first_max(res.loading_percent.to_numpy(), LOADING_TIE_PCT)]
                worst.append((float(res.loading_percent.max() - lim.loading_pct) / 100, f"{label} loading",
                              f"{label} {table.at[i, 'name']}", float(res.loading_percent.max())))
        if not worst:
            return None
        _, limit, element, value = max(worst)
        return {"limit": limit, "element": element, "value": round(value, 4)}

    def reset(self):
        self._set(np.zeros((len(self.buses), 3)))


def group_checks(net, groups: dict) -> dict:
    """Bus -> the ``GroupCheck`` of the supply group it lies in, for ``groups`` (``subnetwork.supply_groups``: bus ->
    its group's buses; one check per group, shared by its buses); ``net`` solved here, its Thevenin data built once
    and only if a group needs it."""
    from v2g_testbed.analysis.hosting.subnetwork import SupplyGroup, WholeNetwork
    from v2g_testbed.sims.batchflow import _runpp

    _runpp(net)
    whole, checks, out = {}, {}, {}

    def whole_network():
        if "net" not in whole:
            whole["net"] = WholeNetwork(net)
        return whole["net"]

    for seed, members in groups.items():
        key = tuple(members)
        if key not in checks:
            checks[key] = GroupCheck(SupplyGroup(net, members, whole_network))
        out[seed] = checks[key]
    return out


class GroupCheck:
    """Limits on one supply group, many charger placements at once."""

    def __init__(self, group):
        self.group, self.flow, net = group, group.flow, group.net
        self.bus_names = np.array([f"bus {n}" for n in net.bus.name.astype(str)], dtype=object)[group.monitored]
        self.line_names = np.array([f"line {n}" for n in net.line.name], dtype=object)
        self.trafo_names = np.array([f"transformer {n}" for n in net.trafo.name], dtype=object)

    # the categories of violation, in the order a tie in margin is broken (``max`` over (margin, limit, ...)
    # tuples, as ``WholeNetworkCheck.check`` takes it, prefers the later name)
    KINDS = ("line loading", "transformer loading", "voltage above", "voltage below")

    def violations(self, res: dict, limits: dict) -> "Violations":
        """The worst violation of each row (``Violations``): the same rule as ``WholeNetworkCheck.check``."""
        lim = Limits.of(limits)
        v_min, v_max = lim.band(self.group.net.bus.vn_kv.to_numpy()[self.group.monitored])
        vm = self.flow.vm(res)[:, self.group.monitored]
        lines, trafos = self.flow.loadings(res)
        rows = len(vm)
        margin = np.full((rows, 4), -np.inf)
        element = np.zeros((rows, 4), int)
        value = np.zeros((rows, 4))
        with np.errstate(invalid="ignore"):  # isolated buses are NaN, as in pandapower's results
            for k, (load, names) in enumerate(((lines, self.line_names), (trafos, self.trafo_names))):
                if load.shape[1]:
                    margin[:, k] = (load.max(axis=1) - lim.loading_pct) / 100
                    element[:, k] = _first_max_rows(load, LOADING_TIE_PCT)
                    value[:, k] = load.max(axis=1)
            for k, excess in ((2, vm - v_max), (3, v_min - vm)):
                margin[:, k] = np.nanmax(excess, axis=1)
                element[:, k] = _first_max_rows(excess, VOLTAGE_TIE_PU)
                value[:, k] = vm[np.arange(rows), element[:, k]]
        margin[~(margin > 0)] = -np.inf
        kind = 3 - np.argmax(margin[:, ::-1], axis=1)  # the last of equal margins, as max() over tuples
        failed = np.isfinite(margin[np.arange(rows), kind])
        kind = np.where(res["converged"], np.where(failed, kind, -1), 4)  # 4: did not converge
        pick = np.clip(kind, 0, 3)
        return Violations(kind, element[np.arange(rows), pick], value[np.arange(rows), pick], self)

    def describe(self, kind: int, element: int, value: float) -> dict | None:
        """A violation as ``WholeNetworkCheck.check`` gives it."""
        if kind < 0:
            return None
        if kind == 4:
            return {"limit": "convergence", "element": "-", "value": None}
        names = (self.line_names, self.trafo_names, self.bus_names, self.bus_names)[kind]
        return {"limit": self.KINDS[kind], "element": str(names[element]), "value": round(float(value), 4)}

    def injections(self, buses, kw_rows: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Complex MVA injected at the group's PQ buses: the base case minus ``kw_rows`` (rows x ``buses``, kW + j
        kvar drawn)."""
        S = np.array(np.broadcast_to(self.flow.S_base if base is None else base,
                                     (kw_rows.shape[0], len(self.flow.pq))), dtype=complex)
        pos = self.flow.pq_positions(buses)
        np.add.at(S.T, pos, -kw_rows.T / 1000.0)
        return S

    def capacities(self, buses, orders: list[np.ndarray], kw: float, n_max: int, limits: dict,
                   base: np.ndarray | None = None, reactive: dict | None = None) -> tuple[list[dict], int]:
        """Hosting capacity of each placement (``orders``: bus positions in ``buses``), all searched together;
        ``base``: base injections per step (steps x PQ buses; time series): then one row per placement and
        step, placement-major; ``reactive``: the chargers' reactive power (``v2g_testbed.sims.reactive`` spec). Returns the
        runs and the power flows they took."""
        nb = len(buses)
        steps = 1 if base is None else len(base)
        cum = np.zeros((len(orders), n_max + 1, nb), np.int32)
        for r, order in enumerate(orders):
            np.cumsum(np.eye(nb, dtype=np.int32)[order[:n_max]], axis=0, out=cum[r, 1:])
        flows = 0
        last = np.repeat(self.flow.V_base[None, :], len(orders) * steps, axis=0)  # each row starts where it last was

        def test(idx, n):
            nonlocal flows
            count = cum[idx // steps, n]
            res, extra = self.solve_with_chargers(buses, count * kw, count * abs(kw), reactive,
                                                  None if base is None else base[idx % steps], last[idx])
            flows += extra
            good = res["converged"]
            last[idx[good]] = res["V"][good]
            return self.violations(res, limits)

        from v2g_testbed.analysis.hosting.search import lockstep

        return lockstep(test, len(orders) * steps, n_max), flows

    def solve_with_chargers(self, buses, p_kw: np.ndarray, rated_kw: np.ndarray, reactive: dict | None,
                            base: np.ndarray | None = None, v0: np.ndarray | None = None) -> tuple[dict, int]:
        """Power flows of rows of charger power ``p_kw`` (rows x ``buses``, + import) with their reactive power:
        a power factor in one pass; Q(U) repeated until the reactive power settles (to 1e-6 kvar, at most
        ``Q_U_ITERATIONS``), as pandapower's controller loop does. Returns the result and the power flows run."""
        from v2g_testbed.sims.reactive import reactive_kvar

        pos = self.flow.pq_positions(buses)
        q = reactive_kvar(p_kw, np.ones_like(p_kw), reactive, rated_kw) if reactive else 0.0
        if reactive and reactive["mode"] == "q_u":
            v = np.abs((self.flow.V_base[None, :] if v0 is None else v0)[:, pos])
            q = reactive_kvar(p_kw, v, reactive, rated_kw)
        for k in range(1, Q_U_ITERATIONS + 1):
            res = self.flow.solve(self.injections(buses, p_kw + 1j * q, base), v0)
            if not reactive or reactive["mode"] != "q_u":
                return res, len(p_kw) * k
            new = reactive_kvar(p_kw, np.abs(res["V"][:, pos]), reactive, rated_kw)
            settled = np.nan_to_num(np.abs(new - q), nan=0.0).max() < 1e-6
            q, v0 = new, res["V"]
            if settled:
                break
        return res, len(p_kw) * k

    def step_injections(self, profiles: dict, steps: np.ndarray) -> np.ndarray:
        """Base injections (steps x PQ buses, complex MVA) of the group at the 15-minute ``steps`` of the
        profiles, from its base case (the network as given) plus each element's change."""
        net, flow = self.group.net, self.flow
        S = np.repeat(flow.S_base[None, :], len(steps), axis=0)
        sign = {"load": -1.0, "storage": -1.0, "sgen": 1.0}
        for (element, column), frame in profiles.items():
            if element not in sign or column not in ("p_mw", "q_mvar"):
                continue
            table = net[element]
            here = table.index[table.in_service].intersection(frame.columns)
            if not len(here):
                continue
            scale = table.loc[here, "scaling"].to_numpy(float)
            now = frame.loc[:, here].to_numpy(float)[steps % len(frame)] * scale
            was = table.loc[here, column].to_numpy(float) * scale
            delta = sign[element] * (now - was) * (1 if column == "p_mw" else 1j)
            np.add.at(S.T, flow.pq_positions(table.loc[here, "bus"]), delta.T)
        return S

    def at(self, buses, kw: np.ndarray, limits: dict, rated_kw=None, reactive: dict | None = None) -> tuple[bool, dict]:
        """Whether ``kw`` (per bus of ``buses``) keeps every limit, and the buses' voltages."""
        res, _ = self.solve_with_chargers(buses, kw[None, :], np.abs(kw)[None, :] if rated_kw is None
                                          else rated_kw[None, :], reactive)
        ok = bool(self.violations(res, limits).ok[0])
        vm = self.flow.vm(res)[0]
        where = {b: i for i, b in enumerate(self.group.net.bus.index)}
        return ok, {"": [float(vm[where[b]]) for b in buses]}
