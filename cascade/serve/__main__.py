from cascade.cli.serve import main

raise SystemExit(main())
