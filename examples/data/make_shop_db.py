"""Build the sample shop database used by `bridge demo` and the database pack's examples.

Usage: python examples/data/make_shop_db.py [path]   (default: examples/data/shop.db)
"""

from __future__ import annotations

import sys
from pathlib import Path

from toolkits.database import make_sample_db


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("shop.db")
    print(make_sample_db(target))


if __name__ == "__main__":
    main()
