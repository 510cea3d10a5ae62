"""setpoint's benchmark suite (issue 9): setpoint side by side with the tools users would otherwise run.

Not part of any published distribution: run it from a checkout with ``dev/bench`` (which puts
``bench/`` on PYTHONPATH after ``eval "$(dev/services env)"``). See docs/benchmarks.md.
"""
