"""`python -m cascade ...`: the `cascade` command."""

from cascade.cli.main import main

raise SystemExit(main())
