from __future__ import annotations

from videoarchiver.entry import main

raise SystemExit(main())
