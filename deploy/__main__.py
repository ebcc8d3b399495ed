"""python -m deploy: the same as python -m deploy.launcher."""

from deploy.launcher import main

raise SystemExit(main())
