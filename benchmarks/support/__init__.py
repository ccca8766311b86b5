"""What the benchmarks share; none of these runs alone."""
