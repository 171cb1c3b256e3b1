"""A loaded scenario: catalog lookups, the network profile and services resolved, the grid checked, the resolved
scenario (itself a scenario) for provenance and reruns, and what a run will cost."""

from __future__ import annotations

import os
import re
from pathlib import Path

from v2g_testbed.cosim.scenario.schema import (_HZ_BAND, INPUTS_DIR, MAX_TIME_S, BusSet, FleetGroup, NetworkProfile,
                                               Scenario, ScenarioError)
from v2g_testbed.sims import catalog
from v2g_testbed.sims.catalog import CatalogError, VehicleModel
from v2g_testbed.sims.files import InputFileError, read_text
from v2g_testbed.sims.fleet import single_phase


def machine_memory_gb() -> float | None:
    """The machine's physical memory in GB (None where the platform does not say: Windows without psutil)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError):
        try:
            import psutil

            return psutil.virtual_memory().total / 1e9
        except ImportError:
            return None


class LoadedScenario:
    """A validated scenario with its file location, catalog lookups resolved."""

    def __init__(self, scenario: Scenario, path: Path):
        self.scenario = scenario
        self.path = path
        self.base_dir = path.parent
        self.vehicles = self._vehicle_catalog()
        self.model_notes: list[str] = []  # what the verdicts must say about the vehicle models used
        self.groups = self._resolve_groups()
        self.services = self._resolve_services()
        self.network_profile = self._resolve_network_profile()
        self._check_frequency()
        self.warnings = self._plausibility_warnings()
        self._grid_checked = False
        self.power_flow: str | None = None  # balanced or unbalanced, resolved by check_grid
        self.power_flow_note: str | None = None
        self.solver: str | None = None  # pandapower or lightsim2grid, resolved by check_grid
        self.load_phases: dict[str, str] = {}  # bus reference -> phase of its single-phase load (same_as_load)

    def error(self, where: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {what}")

    def _plausibility_warnings(self) -> list[str]:
        """Values far outside what real equipment does (sims/data/plausibility.yaml): allowed, but said."""
        bounds = catalog.plausibility()
        out = []
        for g in {id(g["vehicle"]): g["vehicle"] for g in self.groups}.values():
            out += g.implausible()
        for i, g in enumerate(self.groups):
            for name in ("charger_kw", "count"):
                low, high = bounds["group"][name]["plausible"]
                if not low <= g[name] <= high:
                    out.append(f"fleet.groups[{i}].{name} = {g[name]:g} is outside what real fleets use ({low:g}-{high:g})")
        rating_mw = sum(g["count"] * g["charger_kw"] for g in self.groups) / 1000.0
        for i, s in enumerate(self.services):
            if s["contracted_mw"] > bounds["contract_to_fleet_rating_max"] * rating_mw:
                out.append(f"services[{i}].contracted_mw = {s['contracted_mw']:g} MW is more than the whole fleet's "
                           f"charger rating ({rating_mw:g} MW): it cannot be delivered")
        out += self._cost_warnings(bounds["run_cost"])
        low, high = bounds["frequency_hz"]["plausible"]
        for i, ev in enumerate(self.scenario.frequency.events):
            hz = [getattr(ev, "to_hz", None), getattr(ev, "mean_hz", None), *(p[1] for p in getattr(ev, "points", []))]
            far = [h for h in hz if h is not None and not low <= h <= high]
            if far:
                out.append(f"frequency.events[{i}]: {far[0]:g} Hz is beyond {low:g}-{high:g} Hz, where load shedding "
                           "and generator protection would already have acted")
        return out

    def _cost_warnings(self, cost: dict) -> list[str]:
        """What the run will take, from the measured cost per vehicle (plausibility.yaml ``run_cost``): refused
        (exit 2) when it needs more memory than the machine has, warned about when it needs much of it or
        will run long."""
        n = sum(g["count"] for g in self.groups)
        need_gb = cost["memory_base_gb"] + n * cost["memory_per_vehicle_kb"] / 1e6
        minutes = n * self.scenario.duration_s * cost["seconds_per_vehicle_second"] / 60
        have_gb = machine_memory_gb()
        estimate = (f"{n:,} vehicles need about {need_gb:.1f} GB and {minutes:.0f} min (measured cost per "
                    f"vehicle, {cost['source']})")
        if have_gb is not None and need_gb > have_gb:
            raise self.error("fleet.groups", f"{estimate}: more memory than this machine has ({have_gb:.1f} GB)")
        out = []
        if have_gb is not None and need_gb > cost["warn_memory_share"] * have_gb:
            out.append(f"{estimate}: most of this machine's {have_gb:.1f} GB")
        elif minutes > cost["warn_minutes"]:
            out.append(estimate)
        return out

    def _vehicle_catalog(self) -> dict[str, VehicleModel]:
        models = dict(catalog.builtin_vehicles())
        for i, name in enumerate(self.scenario.fleet.catalogs):
            try:
                models.update(catalog.read_vehicle_csv(self.base_dir / name))
            except CatalogError as exc:
                raise self.error(f"fleet.catalogs[{i}]", str(exc)) from None
        return models

    def _resolve_groups(self) -> list[dict]:
        groups, assumed, borrowed = [], {}, {}
        for i, g in enumerate(self.scenario.fleet.groups):
            if isinstance(g.model, VehicleModel):
                vehicle = g.model
            elif g.model in self.vehicles:
                vehicle = self.vehicles[g.model]
            else:
                raise self.error(f"fleet.groups[{i}].model",
                                 f"unknown vehicle model {g.model!r} (known: {', '.join(self.vehicles)})")
            if g.bidirectional and not vehicle.v2g_capable:
                if not self.scenario.fleet.assume_v2g:
                    raise self.error(f"fleet.groups[{i}].bidirectional",
                                     f"{vehicle.model} ({vehicle.year}) is not V2G-capable (source: "
                                     f"{vehicle.v2g_source}): set bidirectional: false (V1G) or fleet.assume_v2g: "
                                     "true (a what-if)")
                assumed[vehicle.model] = vehicle.v2g_source
            vehicle = self._dc_timing(i, g, vehicle)
            if g.connection == "dc" and vehicle.measured_on == "ac":
                borrowed[vehicle.model] = vehicle.source_key
            group = dict(g.model_dump(exclude={"model"}), vehicle=vehicle)
            if g.sessions is not None and g.sessions.file is not None:
                group["sessions_table"] = self._read_sessions(i, g.sessions.file)
            groups.append(group)
        if assumed:
            self.model_notes.append(f"assumed V2G-capable (fleet.assume_v2g): {', '.join(assumed)}, which these model "
                                    f"years are not ({', '.join(sorted(set(assumed.values())))}); their export is "
                                    "modelled with their charging measurements")
        if borrowed:
            self.model_notes.append(f"delays and ramps of {', '.join(borrowed)} on DC chargers are borrowed from "
                                    f"onboard-charger (AC) charging tests ({', '.join(sorted(set(borrowed.values())))}): "
                                    "no DC measurement for them; a group's dc_charger names a measured one")
        return groups

    def _read_sessions(self, i: int, name: str) -> dict:
        """A sessions CSV: ``arrival`` and ``departure`` (HH:MM, local; a departure before the arrival is the next
        day) and ``soc_arrival`` (0-1), one row per recorded session."""
        import csv

        from v2g_testbed.sims.files import read_data_lines

        where = f"fleet.groups[{i}].sessions.file"
        path = self.base_dir / name
        rows = list(csv.DictReader(read_data_lines(path, "trace", lambda m: self.error(where, m))))
        if not rows or not {"arrival", "departure", "soc_arrival"} <= set(rows[0]):
            raise self.error(where, f"{name}: need a header arrival,departure,soc_arrival and at least one session")
        out = {"arrival_h": [], "departure_h": [], "soc_arrival": []}
        extra = {"energy_kwh", "weekday"} & set(rows[0])
        out.update({key: [] for key in extra})
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        for k, row in enumerate(rows, start=2):
            if "weekday" in extra:
                day = (row["weekday"] or "").strip().lower()[:3]
                if day not in days:
                    raise self.error(where, f"{name}: row {k}: weekday {row['weekday']!r}: one of Mon-Sun")
                out["weekday"].append(days.index(day))
            if "energy_kwh" in extra:
                try:
                    wanted = float(row["energy_kwh"]) if (row["energy_kwh"] or "").strip() else float("nan")
                    if not (wanted >= 0 and wanted < 10_000) and wanted == wanted:
                        raise ValueError
                except ValueError:
                    raise self.error(where, f"{name}: row {k}: energy_kwh {row['energy_kwh']!r}: kWh wanted by "
                                     "departure, 0-10000 (or empty)") from None
                out["energy_kwh"].append(wanted)
            try:
                for key in ("arrival", "departure"):
                    hours, minutes = (int(x) for x in row[key].strip().split(":"))
                    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
                        raise ValueError
                    out[f"{key}_h"].append(hours + minutes / 60.0)
                soc = float(row["soc_arrival"])
                if not 0 <= soc <= 1:
                    raise ValueError
                out["soc_arrival"].append(soc)
            except (ValueError, AttributeError):
                raise self.error(where, f"{name}: row {k}: arrival and departure as HH:MM, soc_arrival 0-1") from None
        return out

    def _dc_timing(self, i: int, g: "FleetGroup", vehicle: VehicleModel) -> VehicleModel:
        """The vehicle with its group's DC charger's measured response, if the group names one."""
        if g.dc_charger is None:
            return vehicle
        where = f"fleet.groups[{i}].dc_charger"
        chargers = catalog.dc_chargers()
        if g.connection != "dc":
            raise self.error(where, "a DC charger needs connection: dc")
        if g.dc_charger not in chargers:
            raise self.error(where, f"unknown DC charger {g.dc_charger!r} (known: {', '.join(chargers)})")
        charger = chargers[g.dc_charger]
        if vehicle.dc_inlet is not None and vehicle.dc_inlet != charger.protocol:
            raise self.error(where, f"{charger.name} is {charger.protocol}; {vehicle.model} has a {vehicle.dc_inlet} "
                             "inlet")
        return charger.timing_of(vehicle)

    def _resolve_services(self) -> list[dict]:
        import copy

        from v2g_testbed.analysis import parameters

        known = catalog.services()
        out = []
        for i, ref in enumerate(self.scenario.services):
            service = dict(copy.deepcopy(known[ref.id]), contracted_kw=ref.contracted_mw * 1000.0,
                           contracted_mw=ref.contracted_mw)
            if ref.support is not None:
                if "support" not in service:
                    raise self.error(f"services[{i}].support", f"{ref.id} has no support to hold (only a service "
                                     "that must hold its support once activated, e.g. Nordic FFR, has options)")
                try:
                    service["support"] = catalog.support_option(service, ref.support, ref.id)
                except catalog.CatalogError:
                    raise self.error(f"services[{i}].support", f"{ref.support!r} is not an option of {ref.id} "
                                     f"(its options: {', '.join(service['support']['options'])})") from None
            allowed = parameters.assumptions(service)
            flat = {}
            for key, value in ref.assume.items():  # {envelope: {tolerance_pu: x}} and {envelope.tolerance_pu: x}
                flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
            for name, value in flat.items():
                if name not in allowed:
                    raise self.error(f"services[{i}].assume.{name}", f"not an assumption of {ref.id} (its assumptions: "
                                     f"{', '.join(allowed) or 'none'})")
                low, high = allowed[name]["range"]
                if not 0 <= value <= 10 * high:
                    raise self.error(f"services[{i}].assume.{name}", f"{value:g} is far outside its plausible range "
                                     f"{low:g}-{high:g}")
                if "." not in name:  # initiation_threshold_pu, min_volume_mw
                    service[name] = value
                else:
                    section, key = name.split(".", 1)
                    service[section] = dict(service[section], **{key: value})
            out.append(service)
        return out

    def _resolve_network_profile(self) -> dict:
        net = self.scenario.network
        if isinstance(net.profile, str):
            profile = NetworkProfile.model_validate(catalog.network_profiles()[net.profile]).model_dump()
        else:
            profile = net.profile.model_dump()
        if net.chargers_per_cell is not None:
            profile["chargers_per_cell"] = net.chargers_per_cell
        hops = {h["name"] for h in profile["hops"]}
        n_vehicles = sum(g["count"] for g in self.groups)
        n_cells = -(-n_vehicles // (profile["chargers_per_cell"] or n_vehicles))
        for i, f in enumerate(net.faults):
            where = f"network.faults[{i}]"
            if not profile["hops"]:
                raise self.error(where, "the local profile has no network to fail")
            if f.hop is not None and f.hop not in hops:
                raise self.error(f"{where}.hop", f"no hop {f.hop!r} in this profile (hops: {', '.join(sorted(hops))})")
            if f.cell is not None and f.cell >= n_cells:
                raise self.error(f"{where}.cell", f"no cell {f.cell}: {n_vehicles} chargers make {n_cells} cell(s)")
            if f.count is not None and f.count > n_vehicles:
                raise self.error(f"{where}.count", f"{f.count} chargers, but the fleet has {n_vehicles}")
        if net.report_interval_s is not None and not profile["hops"]:
            raise self.error("network.report_interval_s", "the local profile has no network to carry reports up")
        return profile

    def _check_frequency(self):
        events = self.scenario.frequency.events
        self.system = None
        systems = [i for i, ev in enumerate(events) if ev.type == "system"]
        if systems:
            i = systems[0]
            if len(events) > 1:
                raise self.error(f"frequency.events[{i}]", "a system model must be the only frequency event")
            known = catalog.frequency_profiles()["systems"]
            if events[i].preset not in known:
                raise self.error(f"frequency.events[{i}].preset",
                                 f"unknown system {events[i].preset!r} (known: {', '.join(known)})")
            self.system = dict(known[events[i].preset], replication_factor=events[i].replication_factor)
            self.frequency_events = []
            return
        for i, ev in enumerate(events):
            if ev.at_s >= self.scenario.duration_s:
                raise self.error(f"frequency.events[{i}].at_s",
                                 f"{ev.at_s} s is not before the end of the run (duration_s {self.scenario.duration_s})")
        self.frequency_events = [e for i, ev in enumerate(self.scenario.frequency.events)
                                 for e in self._expand_event(i, ev)]

    def _expand_event(self, i: int, ev) -> list[dict]:
        """Scenario events as the frequency simulator takes them: files read, presets filled in."""
        where = f"frequency.events[{i}]"
        if ev.type == "standard":
            profiles = catalog.frequency_profiles()["profiles"]
            if ev.name not in profiles:
                raise self.error(f"{where}.name", f"unknown standard profile {ev.name!r} (known: {', '.join(profiles)})")
            return [dict(e, at_s=e["at_s"] + ev.at_s) for e in profiles[ev.name]["events"]]
        if ev.type == "ou":
            data = ev.model_dump()
            if ev.preset is not None:
                presets = catalog.frequency_profiles()
                if ev.preset not in presets or not ev.preset.startswith("ou_"):
                    raise self.error(f"{where}.preset", f"unknown process preset {ev.preset!r}")
                for key in ("mean_hz", "theta_per_s", "sigma_hz_per_sqrt_s"):
                    data[key] = presets[ev.preset][key] if data[key] is None else data[key]
            missing = [k for k in ("theta_per_s", "sigma_hz_per_sqrt_s") if data[k] is None]
            if missing:
                raise self.error(where, f"an ou event without a preset needs {', '.join(missing)}")
            data["seed"] = self.scenario.seed if ev.seed is None else ev.seed
            return [data]
        if ev.type == "trace":
            time_s, hz = self._read_trace(where, ev)
            return [{"type": "trace", "at_s": ev.at_s, "time_s": time_s, "hz": hz}]
        return [ev.model_dump()]

    def _read_trace(self, where: str, ev) -> tuple[list[float], list[float]]:
        import numpy as np

        path = self.base_dir / ev.file
        try:
            found = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise self.error(f"{where}.file", f"cannot use {ev.file[:60]!r}: {exc.strerror}") from None
        if not found:
            raise self.error(f"{where}.file", f"no such file {path}")
        try:
            if path.suffix in (".h5", ".hdf5"):
                import h5py

                with h5py.File(path, "r") as h5:
                    group = h5[ev.dataset] if ev.dataset else h5
                    time_s, hz = group[ev.time_column][:], group[ev.hz_column][:]
            else:
                import csv

                lines = [ln for ln in read_text(path, "trace").splitlines()
                         if ln.strip() and not ln.lstrip().startswith("#")]
                rows = list(csv.DictReader(lines))
                for k, r in enumerate(rows):
                    if None in r or None in r.values():  # more or fewer cells than the header has columns
                        raise ValueError(f"data row {k + 1} has {len(lines[k + 1].split(','))} cells, the header "
                                         f"{len(lines[0].split(','))}")
                time_s = [float(r[ev.time_column]) for r in rows]
                hz = [float(r[ev.hz_column]) for r in rows]
        except InputFileError as exc:
            raise self.error(f"{where}.file", f"{path.name} {exc}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise self.error(f"{where}.file", f"cannot read columns {ev.time_column!r} and {ev.hz_column!r} "
                             f"from {path.name}: {str(exc).splitlines()[0]}") from None
        time_s, hz = np.asarray(time_s, float), np.asarray(hz, float)
        if time_s.size < 2 or not np.all(np.isfinite(time_s)) or np.any(np.diff(time_s) <= 0):
            raise self.error(f"{where}.file", f"{path.name}: need at least two samples at finite, increasing times")
        if time_s[-1] - time_s[0] > MAX_TIME_S:
            raise self.error(f"{where}.file", f"{path.name}: the trace spans {time_s[-1] - time_s[0]:.3g} s; at most "
                             f"{MAX_TIME_S} s (24 h)")
        bad = np.flatnonzero(~np.isfinite(hz) | (hz < _HZ_BAND[0]) | (hz > _HZ_BAND[1]))
        if bad.size:
            raise self.error(f"{where}.file", f"{path.name}: sample {bad[0] + 1} is {hz[bad[0]]:g} Hz, outside "
                             f"{_HZ_BAND[0]:g}-{_HZ_BAND[1]:g} Hz")
        return (time_s - time_s[0]).tolist(), hz.tolist()

    def check_grid(self):
        """Load the grid, check every fleet bus exists and resolve ``grid.power_flow`` (slow: imports
        pandapower). Done once."""
        from v2g_testbed.sims.grid import (GridError, choose_solver, find_bus, has_asymmetric_elements, network_view,
                                           single_phase_loads, zero_sequence_missing)

        if self._grid_checked:
            return

        try:
            net = network_view(self.scenario.grid.network, self.base_dir)  # read only, not copied
        except GridError as exc:
            raise self.error("grid.network", str(exc)) from None
        for i, g in enumerate(self.scenario.fleet.groups):
            if isinstance(g.bus, BusSet):
                self.groups[i]["bus"] = self._bus_set(net, g.bus, i)
                continue
            for j, bus in enumerate(g.bus if isinstance(g.bus, list) else [g.bus]):
                try:
                    find_bus(net, bus)
                except GridError as exc:
                    where = f"fleet.groups[{i}].bus" + (f"[{j}]" if isinstance(g.bus, list) else "")
                    raise self.error(where, str(exc)) from None
        self._resolve_load_phases(net, find_bus, single_phase_loads(net))
        self._check_reactive(net, find_bus)
        self._resolve_power_flow(zero_sequence_missing(net), has_asymmetric_elements(net))
        try:
            self.solver = choose_solver(self.scenario.grid.solver, self.power_flow == "unbalanced")
        except GridError as exc:
            raise self.error("grid.solver", str(exc)) from None
        self._grid_checked = True

    def _bus_set(self, net, bus_set: BusSet, i: int) -> list[int]:
        """The buses of ``{every: ..., feeder: ...}``, in index order."""
        from v2g_testbed.sims.topology import feeders
        from v2g_testbed.sims.grid import load_buses

        if bus_set.every == "load":
            found = load_buses(net)
        else:
            found = set(net.bus.index[(net.bus.vn_kv < 1.0) & net.bus.in_service].astype(int))
        what = f"every: {bus_set.every}"
        if bus_set.feeder is not None:
            known = feeders(net)
            if bus_set.feeder not in known:
                raise self.error(f"fleet.groups[{i}].bus.feeder", f"no feeder {bus_set.feeder!r} (feeders, named by "
                                 f"their first line: {', '.join(known) or 'none'})")
            found &= set(known[bus_set.feeder])
            what += f", feeder: {bus_set.feeder}"
        if not found:
            raise self.error(f"fleet.groups[{i}].bus", f"{{{what}}}: the grid has no such bus")
        return sorted(found)

    def _check_reactive(self, net, find_bus):
        """One reactive-power setting per bus: the grid simulator applies it to the bus's charging load."""
        seen: dict[int, tuple[int, dict]] = {}
        for i, g in enumerate(self.groups):
            for bus in g["bus"] if isinstance(g["bus"], list) else [g["bus"]]:
                index = find_bus(net, bus)
                first = seen.setdefault(index, (i, g["reactive"]))
                if first[1] != g["reactive"]:
                    raise self.error(f"fleet.groups[{i}].reactive", f"bus {bus!r} also has fleet.groups[{first[0]}], "
                                     "whose reactive setting differs: chargers at one bus share one setting")

    def _resolve_load_phases(self, net, find_bus, phases: dict[int, str]):
        for i, g in enumerate(self.groups):
            if g["phase"] != "same_as_load" or not single_phase(g):
                continue
            for bus in g["bus"] if isinstance(g["bus"], list) else [g["bus"]]:
                index = find_bus(net, bus)
                if index not in phases:
                    some = ", ".join(str(net.bus.at[b, "name"]) for b in list(phases)[:5])
                    raise self.error(f"fleet.groups[{i}].phase", f"same_as_load, but bus {bus!r} has no single-phase "
                                     f"load" + (f" (buses with one: {some}, ...)" if some else " (the grid has none)"))
                self.load_phases[str(bus)] = phases[index]

    def single_phase_chargers(self) -> bool:
        return any(single_phase(g) for g in self.groups)

    def _resolve_power_flow(self, missing: list[str], asymmetric_network: bool):
        wanted, network = self.scenario.grid.power_flow, self.scenario.grid.network
        if wanted == "unbalanced" and missing:
            raise self.error("grid.power_flow", f"unbalanced needs zero-sequence data that {network} lacks "
                             f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        unbalanced = self.single_phase_chargers() or asymmetric_network
        if wanted == "auto":
            wanted = "unbalanced" if unbalanced and not missing else "balanced"
        self.power_flow = wanted
        if wanted == "balanced" and self.single_phase_chargers():
            why = f"{network} has no zero-sequence data" if missing else "grid.power_flow is balanced"
            self.power_flow_note = f"single-phase chargers spread evenly over the three phases ({why})"

    def _inputs(self):
        """Every file the scenario reads besides itself: (the field as errors spell it, its keys in the
        scenario's data, the file)."""
        sc = self.scenario
        for i, ev in enumerate(sc.frequency.events):
            if ev.type == "trace":
                yield f"frequency.events[{i}].file", ("frequency", "events", i, "file"), self.base_dir / ev.file
        for i, c in enumerate(sc.fleet.catalogs):
            yield f"fleet.catalogs[{i}]", ("fleet", "catalogs", i), self.base_dir / c
        if sc.grid.network.endswith(".json"):
            yield "grid.network", ("grid", "network"), self.base_dir / sc.grid.network
        for i, g in enumerate(sc.fleet.groups):
            if g.sessions is not None and g.sessions.file is not None:
                yield (f"fleet.groups[{i}].sessions.file", ("fleet", "groups", i, "sessions", "file"),
                       self.base_dir / g.sessions.file)

    def input_files(self) -> dict[str, Path]:
        """Every file the scenario reads besides itself, by the field that names it."""
        return {field: path for field, _, path in self._inputs()}

    def resolved(self, inputs_dir: str = INPUTS_DIR) -> tuple[dict, dict[str, Path]]:
        """The scenario as run, itself a scenario that runs to the same verdicts: every default filled
        in, vehicle models inline, ``{every: ...}`` bus sets as the buses found, and each input file
        named as ``inputs_dir/<name>`` beside it. Returns the scenario and the copies to make (new
        relative name -> file read). What the loader resolved besides (services, network profile,
        power flow, solver) is in ``provenance.resolved``, for reading; a rerun resolves it again."""
        data = self.scenario.model_dump(mode="json", exclude={"provenance"})
        for g, resolved in zip(data["fleet"]["groups"], self.groups):
            g["model"] = dict(vars(resolved["vehicle"]))
            g["bus"] = resolved["bus"]  # {every: ...} as the buses it found
        copies: dict[str, Path] = {}
        for _, keys, path in self._inputs():
            if keys[:2] == ("fleet", "catalogs"):
                continue  # every model is inline now (below)
            # a rerun of a resolved scenario reads inputs/<n>-<file>: keep <file>, not <n>-<n>-<file>
            base = re.sub(r"^\d+-", "", path.name) if path.parent.name == inputs_dir else path.name
            name = f"{inputs_dir}/{len(copies)}-{base}"
            copies[name] = path
            node = data
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = name
        data["fleet"]["catalogs"] = []
        data["provenance"] = {"resolved": {"services": self.services, "network_profile": self.network_profile,
                                           "power_flow": self.power_flow, "solver": self.solver}}
        return data, copies
