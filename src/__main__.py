from zfsapi.bootstrap.cli import main

raise SystemExit(main())
