"""``python -m stridetwin`` is the same as the ``stridetwin`` command."""

from stridetwin.cli import main

raise SystemExit(main())
