from ddctl.cli import main

raise SystemExit(main())
