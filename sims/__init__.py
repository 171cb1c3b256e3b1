"""mosaik simulators of v2g-testbed. Each module is usable on its own in any mosaik scenario."""
