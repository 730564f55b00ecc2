"""Run the CLI as ``python -m scenery``."""

from scenery.cli import main

main()
