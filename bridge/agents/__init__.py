"""The agent side: diff and push tool definitions to a Managed Agent, and read/write agent YAML files.

Importing this package loads the Anthropic SDK.
"""

from ._agent_yaml import dump as dump_agent_yaml
from ._agent_yaml import load as load_agent_yaml
from ._sync import (
    SyncResult,
    ToolChange,
    ToolDiff,
    create_agent,
    diff_tools,
    fetch_agent_tools,
    merge_tools,
    sync_agent,
)

__all__ = [
    "SyncResult",
    "ToolChange",
    "ToolDiff",
    "create_agent",
    "diff_tools",
    "dump_agent_yaml",
    "fetch_agent_tools",
    "load_agent_yaml",
    "merge_tools",
    "sync_agent",
]
