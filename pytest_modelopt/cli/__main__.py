"""``python -m pytest_modelopt.cli``: the ``modelopt`` command without its script."""

from __future__ import annotations

from . import main

raise SystemExit(main())
