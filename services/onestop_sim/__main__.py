"""`python -m services.onestop_sim`: the one-stop simulator."""

from services.onestop_sim.cli import main

raise SystemExit(main())
