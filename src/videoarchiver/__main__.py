from __future__ import annotations

from videoarchiver.cli import main

raise SystemExit(main())
