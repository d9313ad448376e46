"""``python -m chatdesign``: the command-line interface (see :mod:`chatdesign.cli`)."""

from chatdesign.cli import main

raise SystemExit(main())
