"""mosaik simulator for a fleet of vehicles on chargers (wraps ``obc.ChargerFleet``).

One ``Fleet`` entity holds every vehicle (vectorised); its children are one ``Bus`` entity per grid
bus the fleet is connected to, so a grid simulator gets one connection per bus, not per vehicle.

Inputs:  ``Fleet.setpoints`` (trigger): ``{"vehicle": [index, ...], "kw": [setpoint, ...]}``, optionally
         ``"seq": [...]`` (a charger ignores a setpoint numbered below one it already has),
         received at the step's time, or each at its own ``"time_ms": [...]`` (not before the
         previous step): a network may hand over what arrived since its last output in one batch.
Outputs: ``Fleet.p_kw``, the total power every ``sample_ms``, as ``{"time_ms": [...], "value": [...]}``
         holding the samples since the previous step; ``Fleet.metered_p_kw``, the same as the
         chargers' meters report it, every ``telemetry_ms``; ``Fleet.vehicle_p_kw`` and ``Fleet.vehicle_soc``
         (one value per vehicle at each multiple of ``step_ms``, as ``{"time_ms": [...], "value": rows}``: a
         numpy array of rows, power as float32, in-process; lists when the simulator runs as a process of its
         own) and ``Fleet.soc_mean`` (``{"time_ms", "value"}``), the rows since the previous step;
         ``Fleet.limit_events`` (``{"time_ms", "vehicle", "limit"}``: vehicles that came to their reserve, -1,
         or full, +1, at the moment the model acted on it); all non-persistent, and all but ``reports`` held and
         given together about every ``record_ms`` (``v2g_testbed.sims.Held``: a recorder steps that often, not at
         every setpoint);
         ``Bus.p_kw`` (persistent: a grid reads the latest value whenever it steps, so a grid's step
         must be a multiple of ``step_ms``) and its split over the phases ``Bus.p_a_kw``, ``p_b_kw``,
         ``p_c_kw`` (a three-phase or DC charger draws a third on each, a single-phase one all on its
         own); ``Fleet.total_p_kw`` (persistent: the fleet's power now, for a system-frequency model
         in closed loop).

The vehicle model is exact in continuous time, so the simulator needs to step only every
``step_ms``, when setpoints arrive, and when others need its output: the aggregate samples in
between are computed inside the step (mosaik's cost is per step), those between two changes of any vehicle's
motion as one array (``ChargerFleet.total_power_at``). Woken by setpoints many times between its own steps, it
asks for own steps sooner (``v2g_testbed.sims.WakeBound``: mosaik 3.6 keeps a wait for each wake-up).

Setpoints stamped with a time after the step they come with (``time_ms``: an aggregator that runs ahead) are held
until a step reaches that time and applied then, each at its own time; the run's end brings a step at the last of
them (``until_ms``).

Sim params: ``step_ms`` (default 100: per-vehicle rows), ``sample_ms`` (default 10), ``telemetry_ms`` (default 1000),
``stride_ms`` (how often it steps on its own, a multiple of step_ms, default step_ms: the rows in between are
taken inside its steps and output as ``{"time_ms": [...], "value": rows}``), ``until_ms`` (the run's end, so the
last row gets its step and nothing held is left behind), ``record_ms`` (default 0: each step's rows at once),
``report_ms`` (0: none; else each charger sends a meter report up every report_ms, spread evenly over it:
output ``Fleet.reports`` ``{"vehicle", "kw", "time_ms"}``. A charger reads its meter when it sends, and the fleet
sends at its steps: each report goes at the first step at or after its slot, with the charger's power then,
stamped with that step's time, from the chargers plugged in then; reports every report_ms therefore go up on the
grid of the fleet's steps, and their latency is the network's alone). Create params: ``vehicles``, a dict of
per-vehicle lists with the keys of ``obc.PARAMETERS`` plus ``bus`` (the grid bus of each vehicle)
and, optionally, ``phase`` (``a``, ``b``, ``c``, or ``abc`` for three-phase; default ``abc``).
Usable in any mosaik scenario: ``world.start("Fleet", ...)`` with ``{"python": "v2g_testbed.sims.fleet:FleetSim"}``.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from v2g_testbed.sims import PHASES, Held, WakeBound, require_milliseconds
from v2g_testbed.sims.obc import OPTIONAL_PARAMETERS, PARAMETERS, ChargerFleet

SPREAD_FIELDS = ("t_a_s", "t_c_s", "ramp_up_kw_per_s", "ramp_down_kw_per_s")
PHASE_OUTPUTS = [f"p_{p}_kw" for p in PHASES]


DISTRIBUTIONS = ("lognormal", "normal", "uniform")


def _spread(rng: np.random.Generator, mean: float, cv: float, n: int, distribution: str = "lognormal") -> np.ndarray:
    """n draws with the given mean and coefficient of variation; cv = 0 gives the mean exactly.

    lognormal: positive, right-skewed. normal: symmetric, redrawn below 5 % of the mean (delays and
    rates must stay positive; for cv <= 0.3 this changes the moments by < 0.1 %). uniform: on
    mean * (1 +- cv * sqrt(3)), which has the same standard deviation (needs cv < 0.577).
    """
    if cv <= 0 or mean <= 0:
        return np.full(n, float(mean))
    if distribution == "lognormal":
        sigma2 = np.log1p(cv * cv)
        return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)
    if distribution == "normal":
        out = rng.normal(mean, cv * mean, n)
        low = out < 0.05 * mean
        while low.any():
            out[low] = rng.normal(mean, cv * mean, int(low.sum()))
            low = out < 0.05 * mean
        return out
    if distribution == "uniform":
        half = cv * np.sqrt(3) * mean
        if half >= mean:
            raise ValueError(f"uniform spread of {cv:.0%} would allow values <= 0: use < 57 %")
        return rng.uniform(mean - half, mean + half, n)
    raise ValueError(f"unknown spread distribution {distribution!r} (one of {', '.join(DISTRIBUTIONS)})")


def sample_vehicles(groups: list[dict], spread_pct: float, rng: np.random.Generator,
                    distribution: str = "lognormal", load_phases: dict | None = None,
                    time_of_day_h: float = 12.0, honour_h: float = 0.0, weekday: int | None = None) -> dict[str, list]:
    """Per-vehicle parameter lists for ``FleetSim`` from fleet groups.

    Each group: ``vehicle`` (a ``catalog.VehicleModel``), ``count``, ``charger_kw``, ``bidirectional``,
    ``soc``, ``soc_min``, ``soc_max``, ``baseline_kw``, ``bus``, ``plugged_in_fraction``,
    ``efficiency_charge``, ``efficiency_discharge``, ``connection`` (``dc`` or ``ac``), ``phases``,
    ``max_current_a``, ``min_current_a``, ``current_step_a``, ``phase_voltage_v``, ``setpoint_step_kw``,
    ``arrival_s``, ``departure_s`` (a number, ``None``, or ``[low, high]`` to draw uniformly per vehicle),
    ``placement`` (``round_robin`` or ``random``, when ``bus`` is a list of buses), ``phase`` (for
    single-phase AC chargers: ``a``, ``b``, ``c``, ``round_robin``, ``random``, or ``same_as_load``, the
    phase of the single-phase load already at the bus, e.g. the house's connection, from ``load_phases``
    (bus as a string -> phase); others draw from all three).

    Delays and ramp rates of each vehicle are drawn around the model's means with coefficient of
    variation ``spread_pct`` / 100 from ``distribution`` (see ``_spread``); zero spread gives the
    catalog values exactly. Where the model's catalog gives a measured spread (``t_a_s_sd`` ...: the standard
    deviation between vehicles, as ``v2g calibrate`` writes it), that spread is drawn instead. Which vehicles are plugged in is drawn without replacement:
    ``round(fraction * count)`` of each group. Power limits: a DC charger's rating; on AC the smallest
    of the charger rating, the onboard charger (the rating its measurement implies, ramp-up x t_b) and
    phases x voltage x maximum current, with the 6 A minimum current as the smallest non-zero power.
    A vehicle arriving after the start begins idle (0 kW).

    A group with ``sessions`` (a profile of sims/data/sessions.yaml, or a fixed plug-in window) draws each vehicle's
    arrival, departure and state of charge on arrival: at ``time_of_day_h`` (the run's start) it is plugged in or
    not, leaves when its session ends, and has charged at its charger's rating since it arrived (until soc_max),
    which is also its baseline (``_sessions``). ``plugged_in_fraction``, ``soc``, ``baseline_kw``, ``arrival_s``
    and ``departure_s`` of such a group are not used. Such a vehicle must still leave with the charge it came for
    (soc_max, or what its session wanted): its lowest power ``p_min_kw`` is raised so that, held there for
    ``honour_h`` hours (the longest delivery duration of the contracted services) and charging at its rating after
    that, it still has that charge by its departure (``departure_floor_kw``): what it can give the service is what
    its departure energy spares. ``weekday`` (0 Monday): the run's day, for sessions files with weekdays.
    """
    cv = spread_pct / 100.0
    out: dict[str, list] = {k: [] for k in ("model", "bus", "phase", "start_delay_ms", "stop_delay_ms",
                                            "ramp_up_kw_per_s", "ramp_down_kw_per_s", "p_min_kw",
                                            "p_max_kw", "baseline_kw", "capacity_kwh", "soc", "soc_min",
                                            "soc_max", "eta_charge", "eta_discharge", "plugged",
                                            *OPTIONAL_PARAMETERS)}
    for g in groups:
        v, n = g["vehicle"], int(g["count"])
        # a measured spread of the model (catalog *_sd columns, e.g. from v2g calibrate) before the scenario's
        drawn = {f: _spread(rng, getattr(v, f), cv if getattr(v, f"{f}_sd", None) is None
                            else getattr(v, f"{f}_sd") / max(getattr(v, f), 1e-12), n, distribution)
                 for f in SPREAD_FIELDS}
        p_max, min_power, step = charger_power(g)
        p_min = -p_max if g["bidirectional"] else 0.0
        p_min_each = np.full(n, p_min)
        if g.get("sessions"):
            plugged, departure, soc, baseline, target = _sessions(rng, g, n, time_of_day_h, p_max,
                                                                  float(v.battery_kwh), weekday)
            arrival = np.zeros(n)
            p_min_each = np.maximum(p_min_each, departure_floor_kw(
                soc, target, float(v.battery_kwh), departure / 3600.0, honour_h, p_max,
                float(g["efficiency_charge"]), float(g["efficiency_discharge"])))
        else:
            plugged = np.zeros(n, dtype=bool)
            plugged[rng.permutation(n)[: round(g["plugged_in_fraction"] * n)]] = True
            arrival = _window(rng, g["arrival_s"], n, 0.0)
            departure = _window(rng, g["departure_s"], n, np.inf)
            soc = np.full(n, float(g["soc"]))
            baseline = np.where(arrival > 0, 0.0, float(np.clip(g["baseline_kw"], p_min, p_max)))
        out["model"] += [v.model] * n
        buses = _place(rng, g["bus"], n, g.get("placement", "round_robin"))
        out["bus"] += buses
        phase = g.get("phase", "round_robin") if single_phase(g) else "abc"
        if phase == "same_as_load":
            out["phase"] += [load_phases[str(b)] for b in buses]
        else:
            out["phase"] += draw_phases(rng, n, phase)
        out["start_delay_ms"] += np.round(drawn["t_a_s"] * 1000).tolist()
        out["stop_delay_ms"] += np.round(drawn["t_c_s"] * 1000).tolist()
        out["ramp_up_kw_per_s"] += drawn["ramp_up_kw_per_s"].tolist()
        out["ramp_down_kw_per_s"] += drawn["ramp_down_kw_per_s"].tolist()
        out["p_min_kw"] += p_min_each.tolist()
        out["p_max_kw"] += [p_max] * n
        out["baseline_kw"] += baseline.tolist()
        out["capacity_kwh"] += [float(v.battery_kwh)] * n
        out["soc"] += soc.tolist()
        for key in ("soc_min", "soc_max"):
            out[key] += [float(g[key])] * n
        out["eta_charge"] += [float(g["efficiency_charge"])] * n
        out["eta_discharge"] += [float(g["efficiency_discharge"])] * n
        out["plugged"] += plugged.tolist()
        out["arrival_ms"] += np.round(arrival * 1000).tolist()
        departure_ms = np.round(departure * 1000).astype(object)  # None: never leaves (lists cross to processes)
        departure_ms[np.isinf(departure)] = None
        out["departure_ms"] += departure_ms.tolist()
        out["min_power_kw"] += [min_power] * n
        out["setpoint_step_kw"] += [step] * n
    return out


GROUP_REQUIRED = ("model", "count", "charger_kw", "bus")


def fleet_rng(seed: int) -> np.random.Generator:
    """The generator every fleet draw of a run takes (a scenario's seed gives the same fleet anywhere)."""
    return np.random.default_rng([int(seed), 1])


def fleet_parameters(groups: list[dict], seed: int = 0, spread_pct: float = 0.0, distribution: str = "lognormal",
                     vehicle_csvs=(), assume_v2g: bool = False) -> dict[str, list]:
    """The ``vehicles`` create parameter of ``Fleet`` for a mosaik world of your own, from catalog names.

    ``groups``: dicts with ``model`` (a catalog name, e.g. ``"VW ID.3"``, or a ``catalog.VehicleModel``),
    ``count``, ``charger_kw`` and ``bus``; every other field of a scenario's fleet group (``soc``,
    ``bidirectional``, ``connection``, ...) is optional and defaults as in ``sims/data/fleet_defaults.yaml``.
    With the same groups, seed and spread, the fleet is the one ``v2g run`` builds for a scenario. A bidirectional
    group of a model that is not V2G-capable is refused unless ``assume_v2g`` (a scenario's ``fleet.assume_v2g``).
    ``controller.aggregator_vehicles(params)`` gives the subset the ``Aggregator`` entity takes.
    """
    from v2g_testbed.sims import catalog

    models = dict(catalog.builtin_vehicles())
    for path in vehicle_csvs:
        models.update(catalog.read_vehicle_csv(path))
    defaults = {**catalog.fleet_defaults(), "placement": "round_robin"}
    defaults.pop("telemetry_hz", None)  # a fleet setting (FleetSim's telemetry_ms), not a group's
    full = []
    for i, g in enumerate(groups):
        missing = [k for k in GROUP_REQUIRED if k not in g]
        unknown = sorted(set(g) - set(defaults) - set(GROUP_REQUIRED))
        if missing or unknown:
            raise ValueError(f"groups[{i}]: " + (f"missing {', '.join(missing)}" if missing else
                                                   f"unknown field {unknown[0]!r} (known: {', '.join(sorted(defaults))})"))
        model = g["model"]
        if isinstance(model, str) and model not in models:
            raise ValueError(f"groups[{i}].model: unknown vehicle model {model!r} (known: {', '.join(models)})")
        vehicle = models[model] if isinstance(model, str) else model
        if g.get("bidirectional", defaults["bidirectional"]) and not vehicle.v2g_capable and not assume_v2g:
            raise ValueError(f"groups[{i}]: {vehicle.model} is not V2G-capable ({vehicle.v2g_source}): give it "
                             "bidirectional=False (V1G) or pass assume_v2g=True (a what-if)")
        full.append({**defaults, **{k: v for k, v in g.items() if k != "model"}, "vehicle": vehicle})
    return sample_vehicles(full, spread_pct, fleet_rng(seed), distribution)


def draw_phases(rng: np.random.Generator, n: int, phase: str) -> list[str]:
    """The phase of each of n chargers: ``a``/``b``/``c``/``abc`` for all, or spread ``round_robin`` / ``random``."""
    return _place(rng, list(PHASES), n, phase) if phase in ("round_robin", "random") else [phase] * n


def phase_shares(phases) -> np.ndarray:
    """Share of each charger's power on phases a, b, c (n x 3): a third each for ``abc`` (three-phase AC, DC),
    all of it on its own phase for a single-phase charger."""
    phases = np.asarray(phases, dtype=str).reshape(-1)
    return np.where((phases == "abc")[:, None], 1 / 3, (phases[:, None] == np.array(PHASES)).astype(float))


def single_phase(g: dict) -> bool:
    """Whether a group's chargers draw on one phase (single-phase AC); DC and three-phase AC draw on all."""
    return g["connection"] == "ac" and g["phases"] == 1


def charger_power(g: dict) -> tuple[float, float, float]:
    """Largest power, smallest non-zero power and setpoint resolution (kW) of a group's chargers with
    its vehicle: a DC charger's rating; on AC the smallest of the charger rating, the onboard charger
    (ramp-up x t_b of its measurement) and phases x voltage x maximum current, stepping in current."""
    if g["connection"] != "ac":
        return float(g["charger_kw"]), 0.0, float(g["setpoint_step_kw"])
    kw_per_a = g["phases"] * g["phase_voltage_v"] / 1000.0
    p_max = min(float(g["charger_kw"]), g["vehicle"].measured_rated_kw, kw_per_a * g["max_current_a"])
    return p_max, kw_per_a * g["min_current_a"], kw_per_a * g["current_step_a"]


def _place(rng: np.random.Generator, where, n: int, placement: str) -> list:
    """Where each of n chargers is (a bus, or a phase): one place, or spread over a list of places
    (in turn, or at random)."""
    if not isinstance(where, (list, tuple)):
        return [where] * n
    if placement == "random":
        return [where[i] for i in rng.integers(0, len(where), n)]
    return [where[i % len(where)] for i in range(n)]


def hours_of(hhmm: str) -> float:
    """A time of day ``HH:MM`` in hours."""
    hours, minutes = hhmm.split(":")
    return int(hours) + int(minutes) / 60.0


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _sessions(rng: np.random.Generator, g: dict, n: int, time_of_day_h: float, p_max: float, battery_kwh: float,
              weekday: int | None = None):
    """(plugged, seconds until departure, state of charge, baseline kW, state of charge wanted at departure) of a
    group's vehicles at ``time_of_day_h``, from their sessions: each vehicle arrives at ``a`` and leaves at ``d``
    (the next day if earlier), arriving with ``s0`` and charging at the charger's rating until what it wants at
    departure (``s0`` + the session's ``energy_kwh`` where the file gives it, else ``soc_max``): the baseline an
    aggregator schedules.

    Without weekdays a vehicle's session is the same every day (one draw, wrapped around midnight). A sessions file
    with a ``weekday`` column (the day of arrival), on a ``weekday`` (0 Monday .. 6 Sunday), draws each vehicle's
    session of the day before and of the day: it is there if the first has not ended yet, or the second has
    begun."""
    from v2g_testbed.sims.catalog import session_profiles

    spec = g["sessions"]
    table = g.get("sessions_table") if spec.get("file") else None
    want, since = None, None
    if table is not None and weekday is not None and table.get("weekday") is not None:
        days = np.asarray(table["weekday"])

        def draw(day):
            rows = np.flatnonzero(days == day)
            if rows.size == 0:  # nobody arrives that day: nobody's session of that day
                return None
            return rows[rng.integers(0, rows.size, n)]

        before, today = draw((weekday - 1) % 7), draw(weekday)
        a_arr, d_arr = np.asarray(table["arrival_h"]), np.asarray(table["departure_h"])
        from_before = np.zeros(n, dtype=bool)
        if before is not None:  # still there from yesterday: it arrived (24 - a) + t hours ago
            from_before = 24 - a_arr[before] + time_of_day_h < (d_arr[before] - a_arr[before]) % 24
        arrived_today = np.zeros(n, dtype=bool)
        if today is not None:
            arrived_today = (a_arr[today] <= time_of_day_h) & (
                time_of_day_h - a_arr[today] < (d_arr[today] - a_arr[today]) % 24)
        pick = np.where(from_before, before if before is not None else 0, today if today is not None else 0)
        a, d = a_arr[pick], d_arr[pick]
        since = np.where(from_before, 24 - a + time_of_day_h, time_of_day_h - a)
        plugged = from_before | arrived_today
    elif table is not None:  # recorded sessions: each vehicle draws one, the same every day
        pick = rng.integers(0, len(table["arrival_h"]), n)
        a, d = np.asarray(table["arrival_h"])[pick], np.asarray(table["departure_h"])[pick]
    elif spec.get("profile"):
        prof = session_profiles()[spec["profile"]]
        a = rng.normal(prof["arrival_h"]["mean"], prof["arrival_h"]["sd"], n) % 24
        d = rng.normal(prof["departure_h"]["mean"], prof["departure_h"]["sd"], n) % 24
        s0 = np.clip(rng.normal(prof["soc_arrival"]["mean"], prof["soc_arrival"]["sd"], n), g["soc_min"],
                     g["soc_max"])
        if prof.get("energy_kwh"):  # what each session wants by departure
            want = np.exp(rng.normal(np.log(prof["energy_kwh"]["median"]), prof["energy_kwh"]["sigma"], n))
    else:
        a, d = np.full(n, hours_of(spec["plug_in"])), np.full(n, hours_of(spec["plug_out"]))
        s0 = np.full(n, float(np.clip(g["soc"], g["soc_min"], g["soc_max"])))
    if table is not None:  # the drawn sessions' charge on arrival and, where recorded, the energy wanted
        s0 = np.clip(np.asarray(table["soc_arrival"])[pick], g["soc_min"], g["soc_max"])
        if table.get("energy_kwh") is not None:
            want = np.asarray(table["energy_kwh"], dtype=float)[pick]
    if since is None:  # the same session every day: wrapped around midnight
        since = (time_of_day_h - a) % 24         # hours since it arrived (if it is there)
        plugged = since < (d - a) % 24
    stay = (d - a) % 24                          # hours plugged in
    target = np.full(n, float(g["soc_max"])) if want is None else np.clip(
        s0 + np.nan_to_num(want, nan=np.inf) / battery_kwh, g["soc_min"], g["soc_max"])
    energy = since * max(p_max, 0.0) * float(g["efficiency_charge"])  # kWh charged since arrival
    soc = np.where(plugged, np.minimum(s0 + energy / battery_kwh, np.maximum(target, s0)), s0)
    charging = plugged & (soc < target - 1e-9)
    baseline = np.where(charging, p_max, 0.0)
    departure = np.where(plugged, (stay - since) * 3600.0, np.inf)
    return plugged, departure, soc, baseline, target


def departure_floor_kw(soc, soc_target, battery_kwh: float, hours_left, honour_h: float, p_max: float,
                       eta_charge: float, eta_discharge: float) -> np.ndarray:
    """Per vehicle, the lowest power (kW, + import) it can hold for ``honour_h`` hours (or until it leaves, if
    sooner) and still reach ``soc_target`` by its departure ``hours_left`` from now, charging at ``p_max`` after
    that: below 0 it may export what it can spare, above 0 it must keep charging that much; at most ``p_max``
    (a vehicle that cannot reach its target even so gives nothing). A vehicle that never leaves has no floor."""
    hours_left = np.asarray(hours_left, dtype=float)
    held = np.minimum(honour_h, hours_left)
    after = np.maximum(hours_left - honour_h, 0.0)
    # kWh it still needs from the held period itself, after what charging at the rating afterwards brings
    wanted = (np.asarray(soc_target, dtype=float) - np.asarray(soc, dtype=float)) * battery_kwh
    need = wanted - max(p_max, 0.0) * eta_charge * np.where(np.isfinite(after), after, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(need > 0, need / (eta_charge * held), need * eta_discharge / held)
    floor = np.where(held > 0, floor, -np.inf)
    return np.where(np.isfinite(hours_left), np.minimum(floor, max(p_max, 0.0)), -np.inf)


def _window(rng: np.random.Generator, value, n: int, default: float) -> np.ndarray:
    """Per-vehicle times in seconds: a number, None (the default), or [low, high] drawn uniformly."""
    if value is None:
        return np.full(n, default)
    if isinstance(value, (list, tuple)):
        return rng.uniform(value[0], value[1], n)
    return np.full(n, float(value))

META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Fleet": {
            "public": True,
            "params": ["vehicles"],
            "attrs": ["setpoints", "p_kw", "metered_p_kw", "vehicle_p_kw", "vehicle_soc", "soc_mean", "total_p_kw",
                      "reports", "limit_events"],
            "trigger": ["setpoints"],
            "persistent": ["total_p_kw"],
            "non-persistent": ["setpoints", "p_kw", "metered_p_kw", "vehicle_p_kw", "vehicle_soc", "soc_mean",
                               "reports", "limit_events"],
        },
        "Bus": {
            "public": False,
            "params": [],
            "attrs": ["p_kw", *PHASE_OUTPUTS],
            "persistent": ["p_kw", *PHASE_OUTPUTS],
            "non-persistent": [],
        },
    },
}


def last_row_ms(until_ms: int, step_ms: int) -> int:
    """The time of ``FleetSim``'s last per-vehicle row (and last step) in a run ending at ``until_ms``: the last
    multiple of ``step_ms`` before it."""
    return (int(until_ms) - 1) // int(step_ms) * int(step_ms)


class FleetSim(mosaik_api_v3.Simulator):
    def __init__(self, arrays: bool = True):
        super().__init__(META)
        self.fleet: ChargerFleet | None = None
        self.eid = "fleet"
        # per-vehicle outputs as numpy arrays (in-process: no million Python floats per step); as lists when
        # the simulator runs in a process of its own, where mosaik sends JSON
        self.arrays = arrays

    def init(self, sid, time_resolution=0.001, step_ms=100, sample_ms=10, telemetry_ms=1000, report_ms=0,
             stride_ms=None, until_ms=None, record_ms=0):
        require_milliseconds("FleetSim", time_resolution)
        if step_ms % sample_ms:
            raise ValueError(f"FleetSim: step_ms ({step_ms}) must be a multiple of sample_ms ({sample_ms})")
        stride_ms = int(stride_ms or step_ms)
        if stride_ms % step_ms:
            raise ValueError(f"FleetSim: stride_ms ({stride_ms}) must be a multiple of step_ms ({step_ms})")
        self.step_ms, self.sample_ms, self.telemetry_ms = int(step_ms), int(sample_ms), int(telemetry_ms)
        self.stride_ms = stride_ms  # how often it steps on its own; per-vehicle rows are taken every step_ms
        # the run's end: the last row (the last multiple of step_ms before it) needs a step of its own
        self.last_row_ms = None if until_ms is None else last_row_ms(until_ms, self.step_ms)
        self.next_sample_ms = 0
        self.next_meter_ms = 0
        self.next_record_ms = 0
        self.report_ms = int(report_ms)  # 0: no meter reports sent up
        self.wake_bound = WakeBound(self.step_ms)  # woken by setpoints often between strides: see WakeBound
        self.held = Held(record_ms, until_ms)
        self.until_ms = float("inf") if until_ms is None else int(until_ms)
        # setpoints received ahead of their time (receive times, vehicles, kW, sequence numbers), applied at the
        # step that reaches them
        self.later = (np.zeros(0, np.int64), np.zeros(0, int), np.zeros(0, float), np.zeros(0, np.int64))
        self.recorded: dict = {}  # the held outputs given after this step
        return self.meta

    def create(self, num, model, vehicles=None):
        if model != "Fleet" or num != 1 or self.fleet is not None:
            raise ValueError("FleetSim creates exactly one Fleet entity")
        bus = [str(b) for b in vehicles["bus"]]
        self.fleet = ChargerFleet(**{k: v for k, v in vehicles.items() if k in PARAMETERS or k in OPTIONAL_PARAMETERS})
        self.bus_names = sorted(set(bus), key=bus.index)
        self.bus_position = {b: k for k, b in enumerate(self.bus_names)}
        self.bus_index = np.fromiter((self.bus_position[b] for b in bus), dtype=int, count=len(bus))
        phase = vehicles.get("phase") or ["abc"] * len(bus)
        unknown = sorted(set(phase) - {*PHASES, "abc"})
        if unknown:
            raise ValueError(f"FleetSim: phase must be a, b, c or abc, got {unknown[0]!r}")
        # share of each vehicle's power on each phase
        self.phase_share = phase_shares(phase)
        if self.eid in self.bus_names:
            raise ValueError(f"FleetSim: a bus may not be called {self.eid!r} (the Fleet entity's id)")
        # one Bus child per grid bus, its id the bus reference itself: GridSim names its ChargingLoad
        # children the same way, so a world connects ``fleet.children`` to the grid's by equal ``eid``
        children = [{"eid": b, "type": "Bus"} for b in self.bus_names]
        n = self.fleet.n
        # chargers report in turn, spread evenly over the report interval (not all at once): charger i's reports
        # fall due at report_offset[i] + k * report_ms
        self.report_offset = (np.arange(n) * self.report_ms // max(n, 1)) if self.report_ms else np.zeros(n, int)
        self.last_report_step = -1
        return [{"eid": self.eid, "type": "Fleet", "children": children}]

    def _reports(self, time):
        """The meter reports sent at ``time`` (a step): every charger with a report due since the previous step and
        plugged in now, with what its meter reads now, stamped ``time`` (read when sent)."""
        if not self.report_ms:
            return None
        prev = self.last_report_step
        self.last_report_step = time
        # the latest slot time <= time of each charger, and whether it falls after the previous step
        slot = (time - self.report_offset) // self.report_ms * self.report_ms + self.report_offset
        due = np.flatnonzero((slot > prev) & (slot <= time) & (slot >= 0))
        plugged, kw = self.fleet.meters(due)
        if not plugged.any():
            return None
        return {"vehicle": due[plugged].tolist(), "kw": kw[plugged].tolist(), "time_ms": [time] * int(plugged.sum())}

    def _record(self, t_ms):
        """The per-vehicle rows (power, state of charge) and the mean state of charge at ``t_ms``."""
        soc = self.fleet.soc
        for name, value in (("vehicle_p_kw", self.fleet.power_kw().astype(np.float32)), ("vehicle_soc", soc),
                            ("soc_mean", float(soc.mean()))):
            self.held.add(name, {"time_ms": [t_ms], "value": [value]})
        self.next_record_ms += self.step_ms

    def _totals_before(self, stop: int) -> None:
        """The 10 ms totals and meter readings due before ``stop`` (ms), evaluated together
        (``ChargerFleet.total_power_at``: the same values as advancing to each in turn)."""
        if min(self.next_sample_ms, self.next_meter_ms) >= stop:
            return
        due = {"p_kw": np.arange(self.next_sample_ms, stop, self.sample_ms, dtype=np.int64),
               "metered_p_kw": np.arange(self.next_meter_ms, stop, self.telemetry_ms, dtype=np.int64)}
        aligned = (self.telemetry_ms % self.sample_ms == 0  # every meter reading is a sample's time
                   and (self.next_meter_ms - self.next_sample_ms) % self.sample_ms == 0
                   and self.next_meter_ms >= self.next_sample_ms)
        times = due["p_kw"] if aligned else np.union1d(due["p_kw"], due["metered_p_kw"])
        totals = self.fleet.total_power_at(times)
        for name, at in due.items():
            self.held.add(name, {"time_ms": at.tolist(), "value": totals[np.searchsorted(times, at)].tolist()})
        if due["p_kw"].size:
            self.next_sample_ms = int(due["p_kw"][-1]) + self.sample_ms
        if due["metered_p_kw"].size:
            self.next_meter_ms = int(due["metered_p_kw"][-1]) + self.telemetry_ms

    def _take_before(self, bound: int) -> None:
        """Take every sample, meter reading and record row due before ``bound`` (ms), in time order (at a row's
        time the totals due then with those before it, then the row: both read the same state)."""
        while True:
            self._totals_before(min(bound, self.next_record_ms + 1))
            if self.next_record_ms >= bound:
                return
            t = self.next_record_ms
            self.fleet.advance(t)
            self._record(t)

    def step(self, time, inputs, max_advance):
        """Apply the setpoints received since the last step at their own receive times (a message may
        carry ``time_ms``; otherwise it was received now), interleaved in time order with the samples;
        at equal times setpoints first (power is continuous, so a sample cannot tell). Setpoints at several
        times up to the next row go to the model together (``ChargerFleet.command_many``, which applies them as
        one ``command`` per time would); the samples between them follow (a setpoint moves no power before
        its delay, and the model stops a batch before any of its vehicles' events)."""
        fleet = self.fleet
        received = [m for m in inputs.get(self.eid, {}).get("setpoints", {}).values() if m]
        # the setpoints held from earlier steps (received at a later time than their step), then this step's
        held_when, held_vehicles, held_kw, held_seq = self.later
        when = np.concatenate([held_when] + [np.asarray(m.get("time_ms", [time] * len(m["vehicle"])), dtype=np.int64)
                                             for m in received])
        if when.size and when.min() < fleet.t_ms:
            raise ValueError(f"FleetSim at {time} ms got setpoints received at {when.min()} ms, before its last "
                             f"step ({fleet.t_ms} ms)")
        vehicles = np.concatenate([held_vehicles] + [np.asarray(m["vehicle"], dtype=int) for m in received])
        kw = np.concatenate([held_kw] + [np.asarray(m["kw"], dtype=float) for m in received])
        seq = np.concatenate([held_seq] + [np.asarray(m.get("seq") or [-1] * len(m["vehicle"]), dtype=np.int64)
                                           for m in received])
        order = np.argsort(when, kind="stable")
        when, vehicles, kw, seq = when[order], vehicles[order], kw[order], seq[order]
        # a setpoint received after this step's time (an aggregator that ran ahead) waits for the step that
        # reaches its time; it is applied then, at its own time, in order with the samples
        due = int(np.searchsorted(when, time, side="right"))
        self.later = (when[due:], vehicles[due:], kw[due:], seq[due:])
        when, vehicles, kw, seq = when[:due], vehicles[:due], kw[:due], seq[:due]
        k = 0
        while k < when.size:  # as one command per receive time, several at once where that changes nothing
            self._take_before(int(when[k]))
            end = int(np.searchsorted(when, self.next_record_ms, side="right"))  # a row comes after them
            k += fleet.command_many(when[k:end], vehicles[k:end], kw[k:end], seq[k:end])
        self._take_before(time + 1)
        fleet.advance(time)
        self.time = time
        nxt = int((time // self.stride_ms + 1) * self.stride_ms)
        if self.last_row_ms is not None and time < self.last_row_ms < nxt:
            nxt = self.last_row_ms
        if self.later[0].size and nxt >= self.until_ms:  # held setpoints the run's end comes before a step of its own
            nxt = int(self.later[0][-1])  # reaches: one step at the last applies them all, each at its own time
        nxt = self.wake_bound.next_step(time, nxt)
        self.held.add("limit_events", self.fleet.take_limit_events())
        self.recorded = self.held.take(nxt)
        return nxt

    def get_data(self, outputs):
        p = self.fleet.power_kw()
        n_bus = len(self.bus_names)
        per_bus = np.bincount(self.bus_index, weights=p, minlength=n_bus)
        if any(attr in PHASE_OUTPUTS for attrs in outputs.values() for attr in attrs):
            per_phase = {name: np.bincount(self.bus_index, weights=p * self.phase_share[:, j], minlength=n_bus)
                         for j, name in enumerate(PHASE_OUTPUTS)}
        data = {}
        for eid, attrs in outputs.items():
            values = {}
            if eid == self.eid:
                for attr in attrs:
                    if attr == "reports":
                        reports = self._reports(self.time)
                        if reports:
                            values[attr] = reports
                    elif attr == "total_p_kw":
                        values[attr] = float(p.sum())
                    elif attr in self.recorded:
                        values[attr] = self.recorded[attr]
                        if attr in ("vehicle_p_kw", "vehicle_soc") and not self.arrays:  # JSON: lists, not arrays
                            values[attr] = {"time_ms": values[attr]["time_ms"],
                                            "value": [row.tolist() for row in values[attr]["value"]]}
            else:
                k = self.bus_position[eid]
                for attr in attrs:
                    values[attr] = float(per_bus[k] if attr == "p_kw" else per_phase[attr][k])
            data[eid] = values
        return data


def bus_reactive(groups: list[dict], vehicles: dict) -> dict[str, dict]:
    """Bus reference -> ``{"spec": ..., "rated_kw": ...}`` for the grid simulator: each group's reactive setting
    (``v2g_testbed.sims.reactive.resolve``d; buses with unity power factor left out) and the rated power of its chargers at
    the bus (their ``p_max_kw``). ``vehicles`` as ``sample_vehicles`` made them, group after group."""
    from v2g_testbed.sims.reactive import resolve

    out: dict[str, dict] = {}
    start = 0
    for g in groups:
        n = int(g["count"])
        spec = resolve(g.get("reactive"))
        if spec is not None:
            for bus, p_max in zip(vehicles["bus"][start:start + n], vehicles["p_max_kw"][start:start + n]):
                entry = out.setdefault(str(bus), {"spec": spec, "rated_kw": 0.0})
                entry["rated_kw"] += float(p_max)
        start += n
    return out


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(FleetSim(arrays=False), "v2g-testbed fleet simulator")
