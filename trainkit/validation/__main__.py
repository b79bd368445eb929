from trainkit.validation.cli import main

raise SystemExit(main())
