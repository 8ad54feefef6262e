"""`python -m bridge`: the same as the `bridge` command."""

from .cli._main import main

raise SystemExit(main())
