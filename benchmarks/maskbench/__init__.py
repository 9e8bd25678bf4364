"""masks.py's helpers: the engines (engines.py), MaskBench rows (data.py), worker processes and the run."""
