"""The topology of a distribution network as planners read it, free of mosaik and of any study: its feeders
(the part below a substation busbar reached through one line) and its supply groups (a busbar with everything
reached from it without crossing a transformer, and the transformers feeding it). Hosting capacity
(``v2g_testbed.analysis.hosting``) studies them; the scenario checks names against them."""

from __future__ import annotations

from v2g_testbed.sims.grid import load_buses


def feeders(net, at: str = "all") -> dict[str, list[int]]:
    """Feeder name (the first line's name) -> its buses (``at="loads"``: those with a load, if any).
    Busbars: the LV side of each transformer, or the external grid's bus if there is no transformer."""
    return {name: buses for name, (_, buses) in feeder_table(net, at).items()}


def feeder_table(net, at: str = "all") -> dict[str, tuple[int, list[int]]]:
    """Feeder name -> (the busbar it hangs from, its buses as ``feeders`` gives them)."""
    import networkx as nx
    import pandapower.topology as top

    customers = load_buses(net) if at == "loads" else set()
    busbars = set(net.trafo.lv_bus.tolist()) or set(net.ext_grid.bus.tolist())
    graph = top.create_nxgraph(net, include_trafos=False)
    graph.remove_nodes_from(busbars | set(net.trafo.hv_bus.tolist()) | set(net.ext_grid.bus.tolist()))
    from_busbar = net.line[net.line.from_bus.isin(busbars) | net.line.to_bus.isin(busbars)]
    out = {}
    for component in nx.connected_components(graph):
        buses = sorted(component)
        first = from_busbar[(from_busbar.from_bus.isin(busbars) & from_busbar.to_bus.isin(component))
                            | (from_busbar.to_bus.isin(busbars) & from_busbar.from_bus.isin(component))]
        if first.empty:
            continue  # not fed from a busbar through a line (e.g. an isolated island)
        name = str(first.iloc[0]["name"] or f"line {first.index[0]}")
        row = first.iloc[0]
        busbar = int(row.from_bus if row.from_bus in busbars else row.to_bus)
        if at == "loads":
            buses = [b for b in buses if b in customers] or buses
        out[name] = (busbar, buses)
    return dict(sorted(out.items()))


def supply_groups(net, busbars) -> dict[int, list[int]]:
    """Busbar -> the buses of its group (component without transformers, plus feeding HV buses)."""
    import networkx as nx
    import pandapower.topology as top

    graph = top.create_nxgraph(net, include_trafos=False)
    out = {}
    for busbar in sorted(set(busbars)):
        component = nx.node_connected_component(graph, busbar)
        feeding = net.trafo[net.trafo.in_service & net.trafo.lv_bus.isin(component) & ~net.trafo.hv_bus.isin(component)]
        out[busbar] = sorted(component | set(feeding.hv_bus.astype(int)))
    return out


def fed_from_outside(net, buses) -> bool:
    """Whether the group of ``buses`` (from ``supply_groups``) needs the rest of the network: no slack inside
    it (a Thevenin source stands for what feeds it) or substations below it (lumped as their base-case flow).
    From the topology alone, before anything is built or solved."""
    buses = set(buses)
    slack_here = set(net.ext_grid.bus[net.ext_grid.in_service].astype(int)) & buses
    below = net.trafo.in_service & net.trafo.hv_bus.isin(buses) & ~net.trafo.lv_bus.isin(buses)
    return not slack_here or bool(below.any())
