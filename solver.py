"""The assignment's solver.py: `Solver` lives in the mnistlab package; this file re-exports it
so that `from solver import Solver` works from the repository's folder.

    python solver.py --help     # the command line, the same as `python -m mnistlab`
"""
from mnistlab.solver import Solver, TrainingDivergedError

__all__ = ["Solver", "TrainingDivergedError"]

if __name__ == "__main__":
    import sys

    from mnistlab.cli import main
    sys.exit(main(prog="python solver.py"))
