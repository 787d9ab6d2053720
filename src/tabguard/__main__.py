"""``python -m tabguard`` runs the command line (the same as the ``tabguard`` script)."""

from tabguard.cli import main

if __name__ == "__main__":
    main()
