"""``python -m adapter.simulator [flags]`` - same as ``accel-adapter simulate``."""

from adapter.simulator.cli import main

raise SystemExit(main())
