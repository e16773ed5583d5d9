"""``python -m taskbalance``: the ``taskbalance`` command (also what ``torchrun -m taskbalance train`` runs)."""

from taskbalance.cli import main

if __name__ == "__main__":
    main()
