"""``python -m ncflab``: the command line."""

from ncflab.cli import main

main()
