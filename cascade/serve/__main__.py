from cascade.serve.cli_serve import main

raise SystemExit(main())
