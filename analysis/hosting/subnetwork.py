"""Each feeder solved behind its supply point, so a hosting-capacity check costs what the feeder costs.

A *supply group* is a substation busbar with everything reached from it without crossing a transformer
(its feeders, open switches respected), the transformers that feed it, and their high-voltage buses.
The group is cut out of the network (``pandapower.toolbox.select_subnet``) and the rest of the network
is replaced by what the group sees of it at the supply point:

- a transformer whose high-voltage bus holds the network's slack (or is merged with it by a closed
  switch) is fed by that slack at its solved voltage: the subnetwork's answers are then *exactly* the
  whole network's (the slack holds the voltage, so nothing beyond it can change);
- otherwise (a MV/LV substation inside a MV network) by a Thevenin equivalent at its high-voltage bus:
  the driving-point impedance ``Z_hh`` of the whole network (sparse LU of its admittance matrix) behind
  a source ``e_h`` set so that the group's base case reproduces the whole network's voltage at ``h``
  (started from ``V_h - Z_hh J``, ``J`` the current the group's loads and generators inject, then
  corrected for the group's own shunts). The rest of the network is held at its base-case currents:
  exact for a linear network, with a second-order error from constant-power loads elsewhere changing
  their currents as the supply voltage moves (and ``Z_hh`` includes the group's own shunt admittance,
  a fraction of a per cent of it); the benchmark compares the answers with whole-network ones;
- a transformer fed *from* the group (a substation below it) becomes a load equal to its base-case flow.

Limits are checked on the group's buses, lines and transformers (its high-voltage buses included).
"""

from __future__ import annotations

import warnings

import numpy as np

from v2g_testbed.sims.batchflow import BatchPowerFlow, Unsupported, _runpp
from v2g_testbed.sims.topology import fed_from_outside, supply_groups

__all__ = ["SupplyGroup", "WholeNetwork", "supply_groups", "fed_from_outside", "Unsupported"]


class SupplyGroup:
    """One supply group cut out of ``net`` (solved by pandapower: ``net.res_*`` hold its base case)."""

    def __init__(self, net, buses: list[int], whole=None):
        """``whole``: a callable giving the whole network's ``WholeNetwork`` (built when first needed)."""
        from pandapower.toolbox import select_subnet
        import pandapower as pp

        buses = set(buses)
        bulky = {k: net.pop(k) for k in ("profiles",) if k in net}  # SimBench's year of profiles: not the group's
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sub = select_subnet(net, buses, include_results=False)
        finally:
            net.update(bulky)
        open_ends = _open_ended_lines(net, sub, buses)
        feeding = net.trafo[net.trafo.in_service & net.trafo.lv_bus.isin(buses) & net.trafo.hv_bus.isin(buses)]
        inner = set(net.trafo.lv_bus[net.trafo.in_service & net.trafo.lv_bus.isin(buses)].astype(int))
        supply = sorted(set(feeding.hv_bus.astype(int)) - inner)  # the HV buses the group is fed from
        self.lumps = {}
        below = net.trafo[net.trafo.in_service & net.trafo.hv_bus.isin(buses) & ~net.trafo.lv_bus.isin(buses)]
        for t, row in below.iterrows():  # substations fed from the group: their base-case flow as a load
            self.lumps[t] = pp.create_load(sub, bus=int(row.hv_bus), p_mw=float(net.res_trafo.at[t, "p_hv_mw"]),
                                           q_mvar=float(net.res_trafo.at[t, "q_hv_mvar"]), name=f"trafo {row['name']}")
        slack_here = set(net.ext_grid.bus[net.ext_grid.in_service].astype(int)) & buses
        self.thevenin = {}
        if not slack_here:
            whole = whole or (lambda: WholeNetwork(net))
            ext = set(sub.ext_grid.bus.astype(int))
            for h in supply:
                if h in ext:
                    continue
                z, e = whole().thevenin(h, buses)
                vm, va = float(np.abs(e)), float(np.degrees(np.angle(e)))
                if abs(z) < 1e-12:  # merged with the slack: the slack itself
                    pp.create_ext_grid(sub, bus=h, vm_pu=vm, va_degree=va)
                    continue
                x = pp.create_bus(sub, vn_kv=float(net.bus.at[h, "vn_kv"]), name=f"thevenin {h}")
                ext_idx = pp.create_ext_grid(sub, bus=x, vm_pu=vm, va_degree=va)
                pp.create_impedance(sub, x, h, rft_pu=z.real, xft_pu=z.imag, sn_mva=float(net.sn_mva),
                                    name=f"thevenin {h}")
                self.thevenin[h] = (z, x, ext_idx)
        if not len(sub.ext_grid):
            raise Unsupported("the group has no supply")
        self.net, self.buses = sub, sorted(buses)
        self.flow = BatchPowerFlow(sub)
        if len(self.thevenin) == 1:
            self._calibrate(net, sub)
        aux = {x for _, x, _ in self.thevenin.values()} | open_ends
        self.monitored = np.array([b not in aux for b in sub.bus.index])
        vm_whole = net.res_bus.vm_pu.reindex(sub.bus.index[self.monitored]).to_numpy()
        vm_sub = sub.res_bus.vm_pu.to_numpy()[self.monitored]
        if np.nanmax(np.abs(vm_whole - vm_sub)) > 1e-6:
            raise Unsupported("the group cut out does not reproduce the whole network's base case")


    def _calibrate(self, net, sub):
        """Move the Thevenin source until the group's base case reproduces the whole network's voltage at its
        supply bus: ``Z_hh`` of the whole network includes the group's own shunts (line charging, transformer
        magnetising), so ``e_h`` computed from it is off by their current; the few 1e-5 pu this corrects
        would otherwise shift every answer. Iterated on the group's own batch solver (a single slack: its
        no-load voltages scale with the source), then solved once more by pandapower."""
        (h, (_, _, ext)), = self.thevenin.items()
        target = net.res_bus.vm_pu[h] * np.exp(1j * np.radians(net.res_bus.va_degree[h]))
        flow = self.flow
        e0 = complex(flow.V_ref[0])
        w0, e = flow.w.copy(), e0
        at = flow.pq_positions([h])[0]
        for _ in range(50):
            flow.w, flow.V_ref = w0 * (e / e0), np.array([e])
            got = flow.solve(flow.S_base[None, :])["V"][0, at]
            if abs(got - target) < 1e-12:
                break
            e -= got - target
        sub.ext_grid.loc[ext, ["vm_pu", "va_degree"]] = [float(np.abs(e)), float(np.degrees(np.angle(e)))]
        self.flow = BatchPowerFlow(sub)


def _open_ended_lines(net, sub, buses: set[int]) -> set[int]:
    """Copy into ``sub`` the lines that leave the group through an open switch (their charging current is the
    group's), each ending at a bus of its own behind that switch. Returns those buses."""
    import pandapower as pp

    crossing = net.line[net.line.in_service & (net.line.from_bus.isin(buses) ^ net.line.to_bus.isin(buses))]
    ends = set()
    for idx, line in crossing.iterrows():
        outside = "to_bus" if line.from_bus in buses else "from_bus"
        far = int(line[outside])
        end = pp.create_bus(sub, vn_kv=float(net.bus.at[far, "vn_kv"]), name=f"open end of line {line['name']}")
        ends.add(end)
        row = line.copy()
        row[outside] = end
        sub.line.loc[idx] = row
        switches = net.switch[(net.switch.et == "l") & (net.switch.element == idx)]
        for s_idx, sw in switches.iterrows():
            sw = sw.copy()
            if int(sw.bus) == far:
                sw["bus"] = end
            sub.switch.loc[s_idx] = sw
    for frame in (sub.line, sub.switch):
        for column in ("from_bus", "to_bus", "bus", "element"):
            if column in frame:
                frame[column] = frame[column].astype(np.int64)
    return ends


class WholeNetwork:
    """The whole network's admittance matrix at its solved base case, for Thevenin equivalents."""

    def __init__(self, net):
        import scipy.sparse.linalg as sla

        if not len(net.res_bus) or net.res_bus.vm_pu.isna().all():
            _runpp(net)
        ppci = net._ppc["internal"]
        if len(ppci["pv"]):
            raise Unsupported("the network has voltage-controlled (PV) buses: no Thevenin equivalent")
        self.pq = np.asarray(ppci["pq"], int)
        self.pos = np.full(ppci["Ybus"].shape[0], -1)
        self.pos[self.pq] = np.arange(len(self.pq))
        self.lu = sla.splu(ppci["Ybus"][self.pq][:, self.pq].tocsc())
        self.V, self.S = ppci["V"], np.asarray(ppci["Sbus"])
        self.lookup = net._pd2ppc_lookups["bus"]

    def thevenin(self, h: int, group: set[int]) -> tuple[complex, complex]:
        """(Z_hh, e_h) in per unit at bus ``h``, the group's own injections taken out of ``e_h``."""
        p = self.lookup[h]
        if self.pos[p] < 0:  # a slack bus
            return 0j, complex(self.V[p])
        unit = np.zeros(len(self.pq), complex)
        unit[self.pos[p]] = 1.0
        z = complex(self.lu.solve(unit)[self.pos[p]])
        ppci_group = np.unique(self.lookup[np.asarray(sorted(group), int)])
        J = np.sum(np.conj(self.S[ppci_group] / self.V[ppci_group]))
        return z, complex(self.V[p] - z * J)
