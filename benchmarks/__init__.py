"""Side-by-side benchmarks; each prints raw figures and `ratio <name> = <value> (target ...)`."""
