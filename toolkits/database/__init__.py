"""Database toolkit pack (tools pending the foundation API)."""

from ._limits import QueryLimits
from ._sample import make_sample_db

__all__ = ["QueryLimits", "make_sample_db"]
