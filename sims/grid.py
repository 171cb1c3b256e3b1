"""Distribution grid: a pandapower power flow as a mosaik simulator stepping every ``step_ms``.

Networks: ``cigre_lv``, ``cigre_mv`` (pandapower's CIGRE benchmarks; MV without DER), ``ieee_eu_lv``
(the IEEE European LV test feeder, 906 buses and 55 single-phase houses, with the zero-sequence data
an unbalanced power flow needs; ``ieee_eu_lv:off_peak_1`` etc. pick its other load snapshots),
``simbench:<code>`` (needs the optional ``simbench`` package), or a path to a pandapower JSON file.
With a SimBench grid and ``profile_start_ms`` (where in the SimBench year the run starts), loads and
generation follow the grid's own 15-minute profiles, indexed by simulation milliseconds.

Every ``step_ms`` the simulator sets the charging load of each bus from its inputs and solves the
power flow, reusing the previous solution (pandapower ``recycle``) after the first step. A power
flow that does not converge is not an error: the step reports ``converged = 0`` and NaN results,
and the next step starts afresh. ``solver``: ``pandapower`` (its Newton-Raphson, with numba when
installed) or ``lightsim2grid`` (the same balanced power flow in C++, when installed); the world
builder chooses (``grid.solver``), so installing a backend never changes results unannounced.

``power_flow``: ``balanced`` (positive sequence, ``runpp``: every charging load is spread evenly
over the three phases) or ``unbalanced`` (``runpp_3ph``: each phase carries what its chargers draw,
so single-phase chargers load one phase and shift the neutral; needs the network's zero-sequence
data, see ``zero_sequence_missing``). Unbalanced results are per phase: voltages ``vm_a_pu``,
``vm_b_pu``, ``vm_c_pu``, the voltage unbalance ``unbalance_pct`` (negative- over positive-sequence
voltage, the EN 50160 quantity) per bus; loadings are those of the most loaded phase.

Entities: one ``Grid`` (outputs ``vm_pu`` (balanced) or the per-phase voltages and ``unbalance_pct``
and ``max_unbalance_pct`` (unbalanced), ``line_loading_pct``, ``trafo_loading_pct`` as lists,
``v_min_pu``, ``v_max_pu`` (over all buses and phases), ``max_line_loading_pct``, ``max_trafo_loading_pct``,
``converged``; and at the first step the labels ``bus_names``, ``line_names``, ``trafo_names`` and each
bus's nominal voltage ``bus_vn_kv``, which the grid limits' voltage levels read), with
one child ``ChargingLoad`` per bus in ``ev_buses`` (its reactive power from ``reactive``, bus reference ->
``{"spec", "rated_kw"}``, by ``v2g_testbed.sims.reactive``: a power factor, or Q(U) on the bus voltage of the previous
power flow; inputs ``p_kw``, a three-phase load, and
``p_a_kw``, ``p_b_kw``, ``p_c_kw``, the load of each phase; + import, summed over sources; connect
persistent sources to them).
It is a hybrid simulator: it steps on its own clock, never because an input changed, and its
outputs are non-persistent (one value per power flow), so a recorder stores each exactly once.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import mosaik_api_v3
import numpy as np

from v2g_testbed.sims import PHASES

PHASE_VOLTAGES = [f"vm_{p}_pu" for p in PHASES]
OUTPUTS = ["vm_pu", *PHASE_VOLTAGES, "unbalance_pct", "max_unbalance_pct", "line_loading_pct", "trafo_loading_pct",
           "v_min_pu", "v_max_pu", "max_line_loading_pct", "max_trafo_loading_pct", "converged", "bus_names",
           "bus_vn_kv", "line_names", "trafo_names", "solver"]
LOAD_INPUTS = ["p_kw", *(f"p_{p}_kw" for p in PHASES)]

META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Grid": {
            "public": True,
            "params": ["ev_buses", "reactive"],
            "attrs": OUTPUTS,
            "trigger": [],
            "persistent": [],
            "non-persistent": OUTPUTS,
        },
        "ChargingLoad": {"public": False, "params": [], "attrs": LOAD_INPUTS, "trigger": [],
                         "persistent": [], "non-persistent": LOAD_INPUTS},
    },
}

BUILTIN_NETWORKS = ("cigre_lv", "cigre_mv", "ieee_eu_lv")
IEEE_EU_LV_SNAPSHOTS = ("on_peak_566", "off_peak_1", "off_peak_1440")

# What runpp_3ph reads besides the positive-sequence data: (table, columns)
ZERO_SEQUENCE = (("line", ("r0_ohm_per_km", "x0_ohm_per_km", "c0_nf_per_km")),
                 ("trafo", ("vector_group", "vk0_percent", "vkr0_percent", "mag0_percent", "mag0_rx", "si0_hv_partial")),
                 ("ext_grid", ("s_sc_max_mva", "rx_max", "x0x_max", "r0x0_max")))


class GridError(ValueError):
    """The grid cannot be loaded or a bus reference does not exist."""


_NETWORKS: dict[tuple, object] = {}  # built once per process: the scenario check and the grid simulator share it


def network_key(spec: str, base_dir: Path | str = ".") -> tuple:
    """What identifies a network as ``load_network`` builds it (a JSON file: its path and modification time)."""
    if spec.endswith(".json"):
        path = Path(base_dir) / spec
        return (spec, str(path.resolve()), path.stat().st_mtime_ns if path.is_file() else None)
    return (spec,)


# Step models (sims/batchflow.py) already built and checked against pandapower's base case in this process, by
# network, base load, profile interval and charging buses: a sweep, replicates or an offer runs the same grid
# many times, and building one costs a runpp (a sixth of a warm run of the DR hub). The last few are kept.
_STEP_MODELS = None  # an OrderedDict, created on first use
STEP_MODELS_KEPT = 4


def load_network(spec: str, base_dir: Path | str = "."):
    """Load a pandapower network from a built-in name, ``simbench:<code>`` or a JSON path (a fresh copy each
    call; the network is built once per process)."""
    import copy

    return copy.deepcopy(network_view(spec, base_dir))


def network_view(spec: str, base_dir: Path | str = "."):
    """The process's one copy of a network, for reading only (checking buses, feeders, phases): no copy made,
    so never change it; ``load_network`` gives a copy to change."""
    key = network_key(spec, base_dir)
    if key not in _NETWORKS:
        _NETWORKS[key] = _build_network(spec, base_dir)
    return _NETWORKS[key]


def _build_network(spec: str, base_dir: Path | str = "."):
    import pandapower as pp
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec == "cigre_lv":
            return pn.create_cigre_network_lv()
        if spec == "cigre_mv":
            return pn.create_cigre_network_mv(with_der=False)
        if spec == "ieee_eu_lv" or spec.startswith("ieee_eu_lv:"):
            snapshot = spec.partition(":")[2] or IEEE_EU_LV_SNAPSHOTS[0]
            if snapshot not in IEEE_EU_LV_SNAPSHOTS:
                raise GridError(f"grid {spec!r}: the IEEE European LV feeder has the snapshots "
                                f"{', '.join(IEEE_EU_LV_SNAPSHOTS)}")
            return pn.ieee_european_lv_asymmetric(snapshot)
        if spec.startswith("simbench:"):
            if importlib.util.find_spec("simbench") is None:
                raise GridError(f"grid {spec!r} needs the optional simbench package: pip install 'v2g-testbed[simbench]'")
            import simbench

            try:
                return simbench.get_simbench_net(spec.split(":", 1)[1])
            except Exception as exc:  # simbench raises bare exceptions for unknown codes
                raise GridError(f"grid {spec!r}: simbench cannot load it: {exc}") from None
        path = Path(base_dir) / spec
        if path.suffix != ".json":
            raise GridError(f"grid {spec!r}: not one of {', '.join(BUILTIN_NETWORKS)}, "
                            "a simbench:<code>, or a .json file")
        try:
            found = path.is_file()
        except OSError as exc:
            raise GridError(f"grid {spec[:60]!r}: cannot use it: {exc.strerror}") from None
        if not found:
            raise GridError(f"grid {spec!r}: no such file {path}")
        try:
            return pp.from_json(str(path))
        except Exception as exc:
            raise GridError(f"grid {spec!r}: not a pandapower JSON network: {exc}") from None


def run_power_flow(net, unbalanced: bool = False, reuse: bool = False, solver: str = "pandapower") -> None:
    """Solve ``net`` in place: ``runpp`` (balanced) or ``runpp_3ph`` (unbalanced; pandapower only).
    ``reuse``: the previous power flow converged and only loads changed since, so start from its
    solution (balanced) or reuse its sequence admittance matrices (unbalanced). Raises pandapower's
    ``LoadflowNotConverged``."""
    import pandapower as pp

    # numba compiles pandapower's Ybus code on a process's first power flow (~1.3 s): worth it only when
    # pandapower solves; lightsim2grid builds its own matrices
    if solver == "zbus":  # the step model's fallback: what auto would pick without it
        solver = choose_solver("auto-runpp", unbalanced)
    numba = solver != "lightsim2grid" and importlib.util.find_spec("numba") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if unbalanced:
            pp.runpp_3ph(net, numba=numba, recycle=dict(bus_pq=True, trafo=False, gen=False, Ybus=True) if reuse else None)
        elif reuse:
            pp.runpp(net, lightsim2grid=solver == "lightsim2grid", numba=numba, init="results",
                     recycle=dict(bus_pq=True, trafo=False, gen=False))
        else:
            pp.runpp(net, lightsim2grid=solver == "lightsim2grid", numba=numba)


def choose_solver(wanted: str, unbalanced: bool) -> str:
    """``auto``: for a balanced power flow the Z-bus step model (``zbus``: pandapower's own matrices, built once
    per run, checked against pandapower's base case; sims/batchflow.py), else pandapower. ``auto-runpp``: what
    ``runpp`` should use, lightsim2grid for a balanced power flow when installed, else pandapower.
    Raise GridError for a choice that cannot be honoured."""
    installed = importlib.util.find_spec("lightsim2grid") is not None
    if wanted in ("lightsim2grid", "zbus") and unbalanced:
        raise GridError(f"{wanted} solves balanced power flows only; the unbalanced one needs pandapower")
    if wanted == "lightsim2grid" and not installed:
        raise GridError("lightsim2grid is not installed: pip install 'v2g-testbed[fast]'")
    if wanted == "auto":
        return "pandapower" if unbalanced else "zbus"
    if wanted == "auto-runpp":
        return "lightsim2grid" if installed and not unbalanced else "pandapower"
    return wanted


ZBUS_MAX_BUSES = 3000  # the step model keeps a dense impedance matrix: 3,000 buses are 144 MB


PROFILE_MS = 900_000  # SimBench profiles: one value per 15 minutes
SIMBENCH_YEAR_START = "2016-01-01T00:00"  # ... from here: step 0 of every profile (the 2016 reference year)
SIMBENCH_YEAR_STEPS = 366 * 96  # 2016 is a leap year


def profile_step_times(steps):
    """The time of each 15-minute profile step of the SimBench year (a pandas DatetimeIndex, in order)."""
    import pandas as pd

    return pd.Timestamp(SIMBENCH_YEAR_START) + pd.to_timedelta(np.asarray(steps, dtype=np.int64) * PROFILE_MS, unit="ms")


_PROFILES: dict[str, dict] = {}  # per process, by network spec: the profiles of the network as loaded


def simbench_profiles(net, spec: str | None = None) -> dict:
    """A SimBench network's absolute profiles: (element, column) -> frame, one row per 15 minutes (read-only).
    With ``spec`` (the network's name as ``load_network`` takes it) computed once per process."""
    if spec is not None and spec in _PROFILES:
        return _PROFILES[spec]
    import simbench

    absolute = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    profiles = {key: frame for key, frame in absolute.items() if frame.shape[1]}
    if spec is not None:
        _PROFILES[spec] = profiles
    return profiles


def simbench_profile_at(net, index: int) -> dict:
    """A SimBench network's absolute loads and generation of one 15-minute interval ``index`` (wrapping around the
    year): (element, column) -> a one-row frame, as ``simbench_profiles`` would give that row, computed from that
    row of the relative profiles alone (the whole year of absolute values is 8 GB for the 9,099-bus MV/LV grid)."""
    import copy

    import simbench

    one = copy.copy(net)  # the network's tables are shared, read only; its relative profiles cut to the row
    one.profiles = {key: frame.iloc[[index % len(frame)]] if len(frame) else frame
                    for key, frame in net.profiles.items()}
    for element in ("load", "sgen", "gen", "storage"):  # elements added since (the chargers) have no profile
        if element in net and "profile" in net[element]:
            one[element] = net[element][net[element].profile.notna()]
    absolute = simbench.get_absolute_values(one, profiles_instead_of_study_cases=True)
    return {key: frame for key, frame in absolute.items() if frame.shape[1]}


def set_loads(net, rows, phase_kw: np.ndarray, q_kvar, unbalanced: bool) -> None:
    """Put ``phase_kw`` (kW per row and phase, + import) and ``q_kvar`` (per row) on the load ``rows`` of ``net``:
    asymmetric loads phase by phase, the reactive power shared as the active power is (a third each when there is
    none), or balanced loads with their totals."""
    q = np.broadcast_to(q_kvar, (len(phase_kw),))
    if unbalanced:
        total = phase_kw.sum(axis=1, keepdims=True)
        share = np.divide(phase_kw, total, out=np.full_like(phase_kw, 1 / 3), where=total != 0)
        for j, phase in enumerate(PHASES):
            net.asymmetric_load.loc[rows, f"p_{phase}_mw"] = phase_kw[:, j] / 1000.0
            net.asymmetric_load.loc[rows, f"q_{phase}_mvar"] = q * share[:, j] / 1000.0
    else:
        net.load.loc[rows, "p_mw"] = phase_kw.sum(axis=1) / 1000.0
        net.load.loc[rows, "q_mvar"] = q / 1000.0


def apply_profiles(net, profiles: dict, index: int) -> None:
    """Set the loads and generation of 15-minute interval ``index`` (wrapping around the year)."""
    for (element, column), frame in profiles.items():
        row = frame.iloc[index % len(frame)]
        net[element].loc[row.index, column] = row.to_numpy()


def zero_sequence_missing(net) -> list[str]:
    """What an unbalanced power flow needs and the network lacks, as 'table.column' (empty: supported)."""
    missing = []
    for table, columns in ZERO_SEQUENCE:
        frame = net[table]
        if table != "ext_grid":
            frame = frame[frame.in_service]
        if frame.empty:
            continue
        for column in columns:
            if column not in frame.columns or frame[column].isna().any():
                missing.append(f"{table}.{column}")
    return missing


def load_buses(net) -> set[int]:
    """The buses with an in-service load, balanced or single-phase: the customers."""
    found: set[int] = set()
    for table in ("load", "asymmetric_load"):
        found |= set(net[table].bus[net[table].in_service].astype(int))
    return found


def has_asymmetric_elements(net) -> bool:
    """Whether the network itself is unbalanced (single-phase loads or generators in service)."""
    return any(len(net[t]) and net[t].in_service.any() for t in ("asymmetric_load", "asymmetric_sgen"))


def single_phase_loads(net) -> dict[int, str]:
    """Bus index -> phase, for buses whose in-service asymmetric loads all draw on one and the same
    phase (a house with a single-phase connection)."""
    out: dict[int, str] = {}
    loads = net.asymmetric_load[net.asymmetric_load.in_service]
    for bus, rows in loads.groupby("bus"):
        used = [p for p in PHASES if (rows[[f"p_{p}_mw", f"q_{p}_mvar"]].abs().to_numpy() > 0).any()]
        if len(used) == 1:
            out[int(bus)] = used[0]
    return out


def find_bus(net, ref) -> int:
    """Index of the bus named or numbered ``ref``. Raise GridError listing some valid names."""
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if int(ref) in net.bus.index:
            return int(ref)
    else:
        matches = net.bus.index[net.bus["name"].astype(str) == str(ref)]
        if len(matches) == 1:
            return int(matches[0])
        if len(matches) > 1:
            raise GridError(f"bus {ref!r} is ambiguous: {len(matches)} buses have that name")
    names = ", ".join(repr(n) for n in net.bus["name"].astype(str).tolist()[:8])
    raise GridError(f"no bus {ref!r} in the grid (names include {names}; or use a bus index)")


def bus_label(net, index: int) -> str:
    name = net.bus.at[index, "name"]
    return str(name) if isinstance(name, str) and name else str(index)


class GridSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.net = None
        self.labels_sent = False
        self.ok_last = False
        self.batch = None  # the Z-bus step model (solver zbus), built once per run
        self.solver_note = None

    def init(self, sid, time_resolution=0.001, network="cigre_mv", base_dir=".", step_ms=1000,
             base_load_scale=1.0, profile_start_ms=None, power_flow="balanced", solver="pandapower", copies=1):
        """``copies``: the network stands for this many identical copies with the chargers shared evenly among
        them; each gets 1/copies of the power at each bus, and the results are each copy's."""
        import pandapower as pp

        self.pp = pp
        if int(copies) < 1:
            raise GridError(f"copies must be a whole number of at least 1, got {copies!r}")
        self.copies = int(copies)
        self.model_key = (network_key(network, base_dir), float(base_load_scale))
        self.network_args = (network, base_dir)
        view = network_view(network, base_dir)  # read only here: the run's copy is made (or reused) in create
        if power_flow not in ("balanced", "unbalanced"):
            raise GridError(f"power_flow must be 'balanced' or 'unbalanced', got {power_flow!r}")
        self.unbalanced = power_flow == "unbalanced"
        self.solver = choose_solver(solver, self.unbalanced)
        if self.unbalanced and (missing := zero_sequence_missing(view)):
            raise GridError(f"grid {network!r}: an unbalanced power flow needs zero-sequence data the network "
                            f"lacks: {', '.join(missing)}")
        # SimBench: loads and generation from the 15-minute profiles, computed for each interval the run reaches
        # (simbench_profile_at), not the year
        self.profile_start_ms = None if profile_start_ms is None else int(profile_start_ms)
        self.profile_index = None
        self.step_ms = int(step_ms)
        return self.meta

    def create(self, num, model, ev_buses=(), reactive=None):
        if model != "Grid" or num != 1:
            raise ValueError("GridSim creates one Grid entity (with a ChargingLoad child per bus)")
        view = network_view(*self.network_args)
        self.child_eids, buses = [], []
        for ref in ev_buses:
            buses.append(find_bus(view, ref))
            if str(ref) == "grid":
                raise ValueError("GridSim: a charging bus may not be called 'grid' (the Grid entity's id)")
            self.child_eids.append(str(ref))  # the bus reference: FleetSim's Bus children carry the same ids
        self.ev_bus_idx = np.asarray(buses, dtype=int)
        # reactive power of the chargers at each bus (sims/reactive.py): spec and rated kW, by bus reference
        reactive = reactive or {}
        self.reactive = [reactive.get(str(ref)) for ref in ev_buses]
        if not (self.solver == "zbus" and self._reuse_step_model()):
            self.net = self._run_network(view)
            if self.solver == "zbus":
                self._build_step_model()
        children = [{"eid": eid, "type": "ChargingLoad"} for eid in self.child_eids]
        return [{"eid": "grid", "type": "Grid", "children": children}]

    def _run_network(self, view):
        """This run's copy of the network: base loads scaled, a load per charging bus (``ev_load_idx``)."""
        import copy

        net = copy.deepcopy(view)
        for table in ("load", "asymmetric_load"):
            net[table]["scaling"] = net[table]["scaling"] * self.model_key[1]
        load_idx = []
        for ref, bus in zip(self.child_eids, self.ev_bus_idx.tolist()):
            if self.unbalanced:
                load_idx.append(self.pp.create_asymmetric_load(net, bus=bus, name=f"ev-{ref}"))
            else:
                load_idx.append(self.pp.create_load(net, bus=bus, p_mw=0.0, name=f"ev-{ref}"))
        self.ev_load_idx = np.asarray(load_idx, dtype=int)
        return net

    def _step_model_key(self):
        import threading

        return (self.model_key, self.profile_index, tuple(self.ev_bus_idx.tolist()),
                threading.get_ident())  # a model's fallback solver writes to its network: one thread's own

    def _reuse_step_model(self) -> bool:
        """With no SimBench profiles the step never writes to the network (results stay arrays): a run reuses the
        network and step model an earlier run of the process built for the same grid and charging buses, instead
        of copying the network again. False when there is none."""
        key = self._step_model_key()
        entry = _STEP_MODELS.get(key) if _STEP_MODELS is not None else None
        if self.profile_start_ms is not None or entry is None or entry[0] is None or len(entry[2].bus) > ZBUS_MAX_BUSES:
            return False
        _STEP_MODELS.move_to_end(key)
        self.batch, _, self.net, self.ev_load_idx = entry
        self._use_step_model()
        return True

    def _use_step_model(self) -> None:
        """Where the chargers sit in ``self.batch``; the next solve starts from its base case."""
        self.ev_pos = self.batch.pq_positions(self.ev_bus_idx)
        self.bus_pos = self.net.bus.index.get_indexer(self.ev_bus_idx)
        self.v_last = None

    def _build_step_model(self):
        """The Z-bus model of this network (sims/batchflow.py), with the chargers at zero: pandapower solves the
        base case once and the model must reproduce it (voltages to 1e-6 pu, loadings to 1e-4 %); a network it
        cannot represent falls back to runpp, and the run says so (``solver``)."""
        import collections
        import copy

        from v2g_testbed.sims.batchflow import BatchPowerFlow, Unsupported

        global _STEP_MODELS
        if _STEP_MODELS is None:
            _STEP_MODELS = collections.OrderedDict()
        self.net.load.loc[self.ev_load_idx, ["p_mw", "q_mvar"]] = 0.0
        key = self._step_model_key()
        if len(self.net.bus) > ZBUS_MAX_BUSES:
            self.batch, why = None, (f"{len(self.net.bus)} buses (the step model keeps a dense impedance matrix; "
                                     f"at most {ZBUS_MAX_BUSES})")
        else:
            if key not in _STEP_MODELS:
                # kept with the network it was built on, which its Newton fallback solves and later runs reuse
                # (_reuse_step_model); a run with SimBench profiles changes its network at every interval, so its
                # models get a copy of their own
                model_net = self.net if self.profile_start_ms is None else copy.deepcopy(self.net)
                try:
                    _STEP_MODELS[key] = (BatchPowerFlow(model_net), None, model_net, self.ev_load_idx)
                except Unsupported as exc:
                    _STEP_MODELS[key] = (None, str(exc), None, None)
                while len(_STEP_MODELS) > STEP_MODELS_KEPT:
                    _STEP_MODELS.popitem(last=False)
            _STEP_MODELS.move_to_end(key)
            self.batch, why = _STEP_MODELS[key][:2]
        if self.batch is not None:
            self._use_step_model()
        else:
            self.solver = choose_solver("auto-runpp", False)
            self.solver_note = f"zbus not used: {why}"

    def _solve_step_model(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> bool:
        """One power flow on the step model: only the chargers' injections change; results stay arrays."""
        s = self.batch.S_base.copy()
        np.subtract.at(s, self.ev_pos, (p_kw + 1j * q_kvar) / 1000.0)  # a load is a negative injection (MVA)
        res = self.batch.solve(s[None, :], v0=self.v_last)
        ok = bool(res["converged"][0])
        if ok:
            self.v_last = res["V"][0]
            self.vm = self.batch.vm(res)[0]
            lines, trafos = self.batch.loadings(res)
            self.line_pct, self.trafo_pct = lines[0], trafos[0]
        return ok

    def _reactive(self, p_kw: np.ndarray) -> np.ndarray:
        """kvar per charging bus from its chargers' setting; Q(U) reads the bus voltage of the previous power flow
        (1.0 pu before the first; sims/data/reactive.yaml: within the response time a grid code allows)."""
        from v2g_testbed.sims.reactive import reactive_kvar

        q = np.zeros(len(p_kw))
        if not any(self.reactive):
            return q
        if self.ok_last and self.batch is not None:
            v = self.vm[self.bus_pos]
        elif self.ok_last:
            table = self.net.res_bus_3ph[PHASE_VOLTAGES].mean(axis=1) if self.unbalanced else self.net.res_bus.vm_pu
            v = table.reindex(self.ev_bus_idx).to_numpy()
        else:
            v = np.ones(len(p_kw))
        for i, entry in enumerate(self.reactive):
            if entry is not None:
                q[i] = reactive_kvar(p_kw[i], v[i], entry["spec"], entry["rated_kw"])
        return q

    def _runpp(self) -> bool:
        try:
            run_power_flow(self.net, self.unbalanced, self.ok_last, self.solver)
            self.ok_last = True
        except self.pp.powerflow.LoadflowNotConverged:
            self.ok_last = False
        return self.ok_last

    def _apply_profiles(self, time):
        """Set the SimBench loads and generation of the 15-minute interval that ``time`` (ms) falls in."""
        index = (self.profile_start_ms + time) // PROFILE_MS
        if index == self.profile_index:
            return
        self.profile_index = index
        apply_profiles(self.net, simbench_profile_at(self.net, index), 0)
        self.ok_last = False  # the network's injections changed everywhere: solve afresh
        if self.batch is not None:  # a new base case for the step model
            self._build_step_model()

    def step(self, time, inputs, max_advance):
        if self.profile_start_ms is not None:
            self._apply_profiles(time)
        phase_kw = np.zeros((len(self.child_eids), 3))  # kW per bus and phase
        for i, eid in enumerate(self.child_eids):
            received = inputs.get(eid, {})
            phase_kw[i] += sum(v for v in received.get("p_kw", {}).values() if v is not None) / 3.0
            for j, attr in enumerate(LOAD_INPUTS[1:]):
                phase_kw[i, j] += sum(v for v in received.get(attr, {}).values() if v is not None)
        phase_kw /= self.copies  # each identical copy of the network carries its share of the chargers
        q_kvar = self._reactive(phase_kw.sum(axis=1))
        if self.batch is not None:
            self.converged = self.ok_last = self._solve_step_model(phase_kw.sum(axis=1), q_kvar)
            return time + self.step_ms
        set_loads(self.net, self.ev_load_idx, phase_kw, q_kvar, self.unbalanced)
        self.converged = self._runpp()
        return time + self.step_ms

    def get_data(self, outputs):
        net = self.net
        n_bus, n_line, n_trafo = len(net.bus), len(net.line), len(net.trafo)
        suffix = "_3ph" if self.unbalanced else ""
        columns = PHASE_VOLTAGES + ["unbalance_percent"] if self.unbalanced else ["vm_pu"]
        if self.converged and self.batch is not None:
            bus, line, trafo = self.vm[None, :], self.line_pct, self.trafo_pct
        elif self.converged:
            bus = net[f"res_bus{suffix}"][columns].to_numpy().T
            line = net[f"res_line{suffix}"].loading_percent.to_numpy() if n_line else np.zeros(0)
            trafo = net[f"res_trafo{suffix}"].loading_percent.to_numpy() if n_trafo else np.zeros(0)
        else:
            bus = np.full((len(columns), n_bus), np.nan)
            line, trafo = np.full(n_line, np.nan), np.full(n_trafo, np.nan)
        vm = bus[:3].ravel() if self.unbalanced else bus[0]  # every voltage, all phases

        def peak(values, fn):
            return float(fn(values)) if values.size else float("nan")

        data = {
            "line_loading_pct": line.tolist(),
            "trafo_loading_pct": trafo.tolist(),
            "v_min_pu": peak(vm, np.min),
            "v_max_pu": peak(vm, np.max),
            "max_line_loading_pct": peak(line, np.max),
            "max_trafo_loading_pct": peak(trafo, np.max),
            "converged": int(self.converged),
        }
        if self.unbalanced:
            data.update({name: bus[j].tolist() for j, name in enumerate(PHASE_VOLTAGES)})
            data["unbalance_pct"] = bus[3].tolist()
            data["max_unbalance_pct"] = peak(bus[3], np.max)
        else:
            data["vm_pu"] = vm.tolist()
        if not self.labels_sent:
            data["bus_names"] = [bus_label(net, i) for i in net.bus.index]
            data["bus_vn_kv"] = net.bus.vn_kv.astype(float).tolist()
            data["line_names"] = [str(n) for n in net.line["name"].tolist()]
            data["trafo_names"] = [str(n) for n in net.trafo["name"].tolist()]
            data["solver"] = [self.solver if self.solver_note is None else f"{self.solver} ({self.solver_note})"]
            self.labels_sent = True
        requested = outputs.get("grid", [])
        return {"grid": {k: v for k, v in data.items() if k in requested}}


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(GridSim(), "v2g-testbed pandapower grid")
