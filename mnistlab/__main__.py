"""`python -m mnistlab ...` runs the command line (see cli.py), as `python solver.py` does."""
import sys

from .cli import main

sys.exit(main(prog="python -m mnistlab"))
