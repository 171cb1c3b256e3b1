"""Many balanced power flows of one network that differ only in bus injections, solved together.

Hosting-capacity studies ask thousands of questions of the same network: "with these chargers at
these buses, at this moment of the year, does every limit hold?". Through ``pandapower.runpp`` each
answer costs the whole network's set-up (~10-100 ms), however small the change. Here the network is
built once by pandapower itself (its admittance matrices ``Ybus``, ``Yf``, ``Yt`` and base injections,
so transformer taps, phase shifts, shunts and open switches are exactly pandapower's), and every row of
a batch of injections is solved by the implicit Z-bus fixed point used for distribution networks
(Chen et al., "Distribution system power flow analysis - a rigid approach", IEEE Trans. Power
Delivery 6(3), 1991):

    V = w + Z conj(S / V),   Z = inv(Y_qq),   w = -Z Y_qs V_s

over the PQ buses q, with the slack buses s held. All rows iterate together (one matrix product per
sweep). A row that has not converged after ``max_iter`` sweeps is solved again by pandapower's Newton-
Raphson (``fallback``), so "does not converge" means what it means in pandapower. The base case is
checked against pandapower's own result at construction (voltages and branch currents to 1e-6), so a
network this module cannot represent raises ``Unsupported`` instead of answering wrongly.

Supported: balanced power flow, constant-power loads and static generators (single-phase ones as their
sum, as ``runpp`` takes them), any number of slack buses; not: PV generators, voltage-dependent (ZIP)
loads (``Unsupported``: use pandapower).
"""

from __future__ import annotations

import warnings

import numpy as np

TOL_PU = 1e-10  # largest change of any bus voltage (pu) between sweeps at convergence
MAX_ITER = 60
CHUNK_ROWS = 2048  # rows solved together (their voltages and currents fit in cache)


class Unsupported(ValueError):
    """The network has something the batch solver does not model: solve it with pandapower."""


def _runpp(net, **kw):
    import pandapower as pp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=False, **kw)


class BatchPowerFlow:
    """A pandapower network, solved once by pandapower, then many times here.

    ``solve`` takes the complex power injected (MVA, generation +) at every PQ bus, one row per power
    flow; ``S_base`` holds the base case's and ``pq_positions`` says where a pandapower bus sits."""

    def __init__(self, net, check: bool = True):
        for table in ("gen", "xward", "ward", "svc", "tcsc", "ssc", "vsc", "dcline", "impedance_load"):
            if table in net and len(net[table]) and net[table].in_service.any():
                raise Unsupported(f"the network has {table} elements in service")
        loads = net.load[net.load.in_service]  # (single-phase loads count in a balanced power flow as their sum)
        zip_cols = [c for c in loads.columns if c.startswith("const_") and c.endswith("percent")]
        if zip_cols and (loads[zip_cols].fillna(0).to_numpy() != 0).any():
            raise Unsupported("the network has voltage-dependent (ZIP) loads")
        self.net = net
        _runpp(net)
        ppci = net._ppc["internal"]
        if len(ppci["pv"]):
            raise Unsupported("the network has voltage-controlled (PV) buses")
        self.base_mva = float(ppci["baseMVA"])
        lookup = net._pd2ppc_lookups["bus"]
        self.ref = np.asarray(ppci["ref"], dtype=int)
        self.pq = np.asarray(ppci["pq"], dtype=int)
        n = ppci["Ybus"].shape[0]
        at = np.full(n, -1)
        at[self.pq] = np.arange(len(self.pq))
        self._pq_pos = at  # ppci bus -> position among the PQ buses (-1: slack)
        ybus = ppci["Ybus"].toarray()
        self.V_ref = ppci["V"][self.ref]
        self.Z = np.linalg.inv(ybus[np.ix_(self.pq, self.pq)])
        self.Zt = np.ascontiguousarray(self.Z.T)
        self.w = -self.Z @ (ybus[np.ix_(self.pq, self.ref)] @ self.V_ref)
        self.S_base = np.asarray(ppci["Sbus"])[self.pq] * self.base_mva  # MVA injected, base case
        self.V_base = ppci["V"][self.pq]
        self.n_ppci = n
        self._bus_ppci = lookup  # pandapower bus -> ppci bus
        self.buses = net.bus.index.to_numpy()
        self.bus_ppci = np.where(lookup[self.buses] < n, lookup[self.buses], n)  # n: isolated (not in ppci)
        # branch currents: kA at each end
        from pandapower.pypower.idx_brch import F_BUS, T_BUS
        from pandapower.pypower.idx_bus import BASE_KV

        br = ppci["branch"]
        kv = ppci["bus"][:, BASE_KV].real
        self.Yf, self.Yt = ppci["Yf"].tocsr(), ppci["Yt"].tocsr()
        to_ka = self.base_mva / np.sqrt(3)
        self.ka_f = to_ka / kv[br[:, F_BUS].real.astype(int)]  # ppci branches
        self.ka_t = to_ka / kv[br[:, T_BUS].real.astype(int)]
        spans = net._pd2ppc_lookups["branch"]
        used = np.asarray(ppci.get("branch_is", np.ones(len(br), bool)), bool)  # ppc branch in service (ppci row)
        if used.size != len(br):
            in_ppci = np.cumsum(used) - 1
        else:
            used, in_ppci = np.ones(len(br), bool), np.arange(len(br))

        def rows(element):  # ppci row of each element's branch, -1 where pandapower left it out (isolated)
            if element not in spans:
                return np.zeros(0, int)
            span = np.arange(*spans[element])
            return np.where(used[span], in_ppci[span], -1)

        self.lines, self.trafos = rows("line"), rows("trafo")
        line, trafo = net.line, net.trafo
        self.line_rating_ka = (line.max_i_ka * line.df * line.parallel).to_numpy(float)
        self.trafo_rating = (trafo.sn_mva.to_numpy(float) / np.sqrt(3) * trafo.parallel.to_numpy(float)
                             * trafo.df.to_numpy(float))
        self.trafo_kv = np.stack([trafo.vn_hv_kv.to_numpy(float), trafo.vn_lv_kv.to_numpy(float)], axis=1)
        self.line_index, self.trafo_index = line.index.to_numpy(), trafo.index.to_numpy()
        if check:
            self._check_base()

    def pq_positions(self, buses) -> np.ndarray:
        """Column of each pandapower bus in the PQ-bus arrays (``Unsupported`` for a slack bus)."""
        pos = self._pq_pos[self._bus_ppci[np.asarray(list(buses), dtype=int)]]
        if (pos < 0).any():
            raise Unsupported("an injection bus is a slack bus")
        return pos

    def _check_base(self):
        """The base case solved here equals pandapower's (voltages and loadings)."""
        res = self.solve(self.S_base[None, :])
        if not res["converged"][0]:
            raise Unsupported("the base case does not converge by the Z-bus iteration")
        vm = self.vm(res)[0]
        if np.nanmax(np.abs(vm - self.net.res_bus.vm_pu.to_numpy())) > 1e-6:
            raise Unsupported("the base case differs from pandapower's voltages")
        lines, trafos = self.loadings(res)
        if len(self.line_index) and np.nanmax(np.abs(lines[0] - self.net.res_line.loading_percent.to_numpy())) > 1e-4:
            raise Unsupported("the base case differs from pandapower's line loadings")
        if len(self.trafo_index) and np.nanmax(np.abs(trafos[0] - self.net.res_trafo.loading_percent.to_numpy())) > 1e-4:
            raise Unsupported("the base case differs from pandapower's transformer loadings")

    def solve(self, s_mva: np.ndarray, v0: np.ndarray | None = None) -> dict:
        """Solve each row of ``s_mva`` (rows x PQ buses: complex MVA injected). Returns ``V`` (rows x PQ
        buses, complex pu) and ``converged`` (rows). ``v0``: starting voltages (default: the base case's)."""
        S = np.atleast_2d(np.asarray(s_mva, dtype=complex)) / self.base_mva
        rows = S.shape[0]
        V = np.array(np.broadcast_to(self.V_base if v0 is None else v0, S.shape), dtype=complex)
        done = np.zeros(rows, bool)
        for start in range(0, rows, CHUNK_ROWS):  # a block of rows at a time: its arrays stay in cache
            Sc, Vc = S[start:start + CHUNK_ROWS], V[start:start + CHUNK_ROWS]
            active = np.arange(len(Sc))
            for _ in range(MAX_ITER):
                every = active.size == len(Sc)
                Va = Vc if every else Vc[active]
                new = np.conj((Sc if every else Sc[active]) / Va) @ self.Zt
                new += self.w
                change = np.abs(new - Va).max(axis=1)
                Vc[active] = new
                finished = change < TOL_PU
                done[start + active[finished]] = True
                active = active[~finished]
                if not active.size:
                    break
        converged = done & np.isfinite(V).all(axis=1)
        for r in np.flatnonzero(~converged):  # pandapower's Newton-Raphson decides these
            V[r], converged[r] = self._newton(S[r] * self.base_mva)
        return {"V": V, "converged": converged}

    def _newton(self, s_mva: np.ndarray):
        """One row by pandapower: the injections' difference from the base case as a load per PQ bus."""
        import pandapower as pp

        net = self.net
        if not hasattr(self, "_nr_loads"):
            ppci_to_bus = {int(p): int(b) for b, p in zip(self.buses, self.bus_ppci)}
            self._nr_buses = [ppci_to_bus[int(p)] for p in self.pq]
            self._nr_loads = [pp.create_load(net, bus=b, p_mw=0.0, name="batchflow-row") for b in self._nr_buses]
        draw = -(s_mva - self.S_base)
        net.load.loc[self._nr_loads, "p_mw"] = draw.real
        net.load.loc[self._nr_loads, "q_mvar"] = draw.imag
        try:
            _runpp(net)
            ok = True
            V = net._ppc["internal"]["V"][self.pq]
        except pp.powerflow.LoadflowNotConverged:
            ok, V = False, np.full(len(self.pq), np.nan + 0j)
        net.load.loc[self._nr_loads, ["p_mw", "q_mvar"]] = 0.0
        return V, ok

    def full_voltages(self, res: dict) -> np.ndarray:
        """Complex voltages of every ppci bus (rows x buses)."""
        V = np.empty((res["V"].shape[0], self.n_ppci + 1), complex)
        V[:, self.pq] = res["V"]
        V[:, self.ref] = self.V_ref
        V[:, -1] = np.nan  # isolated buses
        return V

    def vm(self, res: dict) -> np.ndarray:
        """Voltage magnitude (pu) of every pandapower bus, in ``net.bus`` order (rows x buses)."""
        return np.abs(self.full_voltages(res)[:, self.bus_ppci])

    def loadings(self, res: dict) -> tuple[np.ndarray, np.ndarray]:
        """Loading (%) of every line and transformer as pandapower defines it (rows x elements)."""
        V = self.full_voltages(res)[:, :-1].T
        i_f = np.abs(self.Yf @ V).T * self.ka_f
        i_t = np.abs(self.Yt @ V).T * self.ka_t
        i_f, i_t = np.pad(i_f, ((0, 0), (0, 1))), np.pad(i_t, ((0, 0), (0, 1)))  # row -1: an isolated branch, 0 A
        line = np.maximum(i_f[:, self.lines], i_t[:, self.lines]) / self.line_rating_ka * 100
        hv_lv = np.maximum(i_f[:, self.trafos] * self.trafo_kv[:, 0], i_t[:, self.trafos] * self.trafo_kv[:, 1])
        return line, hv_lv / self.trafo_rating * 100
