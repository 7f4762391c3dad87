"""The framework-neutral core: arrays, layers, events, metrics, sinks, bus, monitor, plugins."""
