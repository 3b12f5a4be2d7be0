"""``python -m benchmarks`` = ``python benchmarks/run.py``."""

from benchmarks.run import main

main()
