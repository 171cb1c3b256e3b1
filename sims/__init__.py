"""mosaik simulators of v2g-testbed. Each module is usable on its own in any mosaik scenario."""

PHASES = ("a", "b", "c")  # the three phases, as chargers, loads and results name them


def require_milliseconds(simulator: str, time_resolution: float) -> None:
    """Every simulator here counts time in integer milliseconds: refuse any other resolution."""
    if abs(time_resolution - 0.001) > 1e-12:
        raise ValueError(f"{simulator} works in milliseconds: start the world with time_resolution=0.001 (then "
                         "world.run(until=...) counts milliseconds: until=60_000 is one minute)")
