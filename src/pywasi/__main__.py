"""``python -m pywasi``: the same as the ``pywasi`` command."""

from .cli import main

raise SystemExit(main())
