"""The composition root: the `propstream` command wires kernel and services together."""
