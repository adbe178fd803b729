"""The checkout's own tools, run by make from the repository's root and never
installed: `make bench` (tools.bench) and `make reproduce` (tools.reproduce).
They use what exists only here (examples/shop, the compose stack)."""
