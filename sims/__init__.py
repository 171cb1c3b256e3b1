"""mosaik simulators of v2g-testbed. Each module is usable on its own in any mosaik scenario."""

PHASES = ("a", "b", "c")  # the three phases, as chargers, loads and results name them


def require_milliseconds(simulator: str, time_resolution: float) -> None:
    """Every simulator here counts time in integer milliseconds: refuse any other resolution."""
    if abs(time_resolution - 0.001) > 1e-12:
        raise ValueError(f"{simulator} works in milliseconds: start the world with time_resolution=0.001 (then "
                         "world.run(until=...) counts milliseconds: until=60_000 is one minute)")


class WakeBound:
    """Keeps mosaik's record of a simulator's waits short when input wakes it often between its own steps.

    mosaik 3.6 (the newest release) keeps a cancelled wait in a simulator's progress for every time input wakes it
    before its own next step, until the world's progress reaches that step (or the end of the run, for a simulator
    with no step of its own), and scans them all at every progress update of every simulator: a simulator woken
    every 20 ms between own steps 5 s apart makes a long run quadratic in its steps (benchmarks/bench_long_run.py).
    mosaik's repository already drops a cancelled wait at once (``Progress._add_trigger``, mosaik/progress.py at
    0f0dc857); until a release has it, a simulator woken ``wakes`` times since its last own step asks for own
    steps at the next multiple of ``interval_ms`` (times its inputs usually wake it anyway), which release them,
    until ``quiet`` such steps pass without a wake-up; ``idle_ms`` > 0 gives a simulator with no step of its own one
    at the next multiple of it. An extra step changes nothing the simulators here output (their samples carry
    their own times; tested on the recorded run)."""

    def __init__(self, interval_ms: int, wakes: int = 16, quiet: int = 10, idle_ms: int = 0):
        self.interval_ms, self.wakes, self.quiet = int(interval_ms), int(wakes), int(quiet)
        self.idle_ms = int(idle_ms)  # > 0: with no step of its own, a step at the next multiple of this
        self.asked = None  # the own step last asked for
        self.woken = 0  # wake-ups since the last own step
        self.busy = 0  # > 0: asking for a step every interval, until this many own steps pass without a wake-up

    def next_step(self, time: int, own_next, early: bool = True):
        """The step to ask mosaik for after a step at ``time``, given the simulator's own next step (or None);
        ``early=False``: this step's own next only (a step sooner would change what it does)."""
        if time == self.asked:
            self.busy = self.quiet if self.busy and self.woken else max(self.busy - 1, 0)
            self.woken = 0
        else:
            self.woken += 1
            if self.busy or self.woken >= self.wakes:
                self.busy = self.quiet
        if early and self.busy and self.interval_ms > 0:
            sooner = (time // self.interval_ms + 1) * self.interval_ms
            if own_next is None or sooner < own_next:
                own_next = sooner
        if early and own_next is None and self.idle_ms > 0:  # a wait for the end of the run is never released
            own_next = (time // self.idle_ms + 1) * self.idle_ms
        if own_next is not None:
            self.asked = own_next
        return own_next


class Held:
    """Outputs for a recorder, held and given together instead of one step at a time, so that a recorder connected
    to them steps about once per ``every_ms`` rather than once per step of their source (a controller or a fleet
    woken every 20 ms). Each output is a block of rows with their own times, as a recorder takes them
    (``{"time_ms": [...], "value": [...]}``, or a table's columns beside ``time_ms``). ``take`` gives everything
    held once the source's next step comes ``every_ms`` or more after the first row held, or there is none before
    ``until_ms`` (the end of the run: nothing is left behind). ``every_ms`` 0: every step's rows at once."""

    def __init__(self, every_ms: int = 0, until_ms=None):
        self.every_ms = int(every_ms)
        self.until_ms = float("inf") if until_ms is None else float(until_ms)
        self.blocks: dict[str, dict[str, list]] = {}
        self.first = float("inf")  # the time of the first row held

    def add(self, attr: str, block: dict) -> None:
        """Hold the rows of ``block`` (equal-length lists, one of them ``time_ms``) for output ``attr``."""
        if not len(block["time_ms"]):
            return
        held = self.blocks.get(attr)
        if held is None:
            held = self.blocks[attr] = {column: [] for column in block}
        for column, values in block.items():
            held[column].extend(values)
        self.first = min(self.first, block["time_ms"][0])

    def take(self, next_step) -> dict[str, dict]:
        """What goes out after this step, by output, given the simulator's next step (None: none asked for)."""
        if not self.blocks or (self.every_ms and next_step is not None and next_step < self.until_ms
                               and next_step < self.first + self.every_ms):
            return {}
        out, self.blocks, self.first = self.blocks, {}, float("inf")
        return out
