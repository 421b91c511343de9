"""Stack measurement: one module per `corft-ros measure NAME` (its `register(benches)` adds the sub-command).

Each measures a part of the stack as a user would run it and prints only what it measured (`--json`). The trials
benchmark of policies (success rate, cycle time) is the product, not a measurement of the stack: corft_ros/benchmark.py.
"""
