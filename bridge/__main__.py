"""`python -m bridge`: the same as the `bridge` command."""

from .cli import main

raise SystemExit(main())
