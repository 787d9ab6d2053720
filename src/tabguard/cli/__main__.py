"""``python -m tabguard.cli`` runs the command line."""

from tabguard.cli import main

main()
