"""Trial statistics and reports for benchmarks (success rate with intervals, cycle time, loop stats)."""
