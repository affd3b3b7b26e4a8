"""The ``rootless`` command line: parse, call the engine, render. Nothing else."""
