"""``python -m pywasi``: the same as the ``pywasi`` command."""

from .cli import command

raise SystemExit(command())
