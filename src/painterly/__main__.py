"""``python -m painterly`` is the ``painterly`` command."""

from painterly.cli import main

raise SystemExit(main())
