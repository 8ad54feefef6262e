"""`bridge.toml`: what the `bridge` daemon serves, and how.

```toml
agent = "agent_01..."                 # serve every session of this agent (new ones too) ...
sessions = ["sesn_01..."]             # ... and/or exactly these sessions
timeout = 60                          # default per-call deadline, seconds (tool > toolset > this)
state_dir = ".bridge"                 # where the SQLite journal lives

[api]                                 # optional: defaults come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL
api_key = { env = "SUPPORT_BOT_KEY" }

[limits]                              # passed to `bridge.Limits`
max_concurrency = 64

[timeouts]                            # passed to `bridge.Timeouts` (drain, agent_poll, ...)
drain = 30

[journal]
backend = "sqlite"                    # or "memory"
path = ".bridge/journal.db"

[health]
port = 9464                           # also serves /approvals when [approvals] http_token is set

[telemetry]
otel = true                           # like `bridge run --otel`: OpenTelemetry spans, exported as OTEL_* says

[approvals]                           # calls whose policy says "ask" wait for a decision (see docs/approvals.md)
timeout = 3600                        # seconds a parked call waits; then:
on_timeout = "deny"                   # ... "deny" (default) or "allow"
poll_interval = 1.0                   # how often decisions by `bridge approvals` (another process) are read
http_token = { env = "BRIDGE_APPROVALS_TOKEN" }   # bearer token for /approvals on the health port

[approvals.tools]                     # default policy by tool name pattern (fnmatch, first match wins);
"refund*" = "ask"                     # a tool's or toolset's own approval= wins over these
"drop_*" = "deny"

[mcp.serve]                           # `bridge mcp serve`: stdio unless `http` is set
http = "127.0.0.1:8765"
token = { env = "BRIDGE_MCP_TOKEN" }  # bearer token of the HTTP transport (from the environment only)
allowed_origins = ["https://app.example.com"]   # besides loopback origins

[toolsets.shop]                       # one table per toolset (or an array: [[toolsets]])
use = "toolkits.database:sqlite_toolset"
path = "shop.db"                      # every other key is an argument of the factory
prefix = "shop"                       # a factory taking `prefix` gets it; else Toolset.with_prefix
dsn = { env = "PG_DSN" }              # secrets come from the environment, never from the file (a plain
                                      # `password`/`token`/`api_key`/... value or a URL with a password is refused)
```

The loader checks everything it can before anything runs and raises one `ConfigError` that lists every problem, so
an operator fixes a config in one pass. Relative paths are relative to the working directory. This module is part of
the CLI: it is handed the environment explicitly (library code never reads environment variables).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigError
from ..runtime import Limits, Timeouts

__all__ = [
    "ApprovalsSpec",
    "Config",
    "JournalSpec",
    "McpServeSpec",
    "Secret",
    "ToolsetSpec",
    "build_limits",
    "load_config",
    "parse_address",
    "parse_config",
]

_TOP_KEYS = (
    "agent",
    "sessions",
    "timeout",
    "state_dir",
    "api",
    "limits",
    "timeouts",
    "journal",
    "health",
    "mcp",
    "approvals",
    "telemetry",
    "toolsets",
)
_APPROVAL_KEYS = ("timeout", "on_timeout", "poll_interval", "http_token", "tools")
_POLICIES = ("allow", "deny", "ask")
_MCP_SERVER_KEYS = ("name", "type", "command", "args", "env", "cwd", "url", "headers")  # + the mcp_toolset options
_TOOLSET_KEYS = ("use", "prefix")
_JOURNAL_BACKENDS = ("sqlite", "memory")
# Option names that hold secrets, and URLs with a password (`postgresql://user:pw@host/db`): refused as plain values.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|credential|private_?key)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@", re.IGNORECASE)


class Secret:
    """A value read from an environment variable: its `repr` never shows it, so it cannot leak into logs."""

    __slots__ = ("_value", "env")

    def __init__(self, value: str, env: str) -> None:
        self._value = value
        self.env = env

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (a factory argument, the API client)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self._value, self.env) == (other._value, other.env)

    def __hash__(self) -> int:
        return hash((self._value, self.env))


def reveal(value: Any) -> Any:
    """`value` with every `Secret` inside it (at any depth) replaced by its plain value."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


@dataclass(frozen=True)
class ToolsetSpec:
    """One `[toolsets.NAME]` table: a TARGET to load, the factory's arguments and an optional prefix."""

    name: str
    use: str
    options: Mapping[str, Any] = field(default_factory=dict)
    prefix: str | None = None

    def kwargs(self) -> dict[str, Any]:
        """The factory's keyword arguments with secrets revealed."""
        return {k: reveal(v) for k, v in self.options.items()}


@dataclass(frozen=True)
class JournalSpec:
    """Which journal backend the daemon uses; `path=None` means `<state_dir>/journal.db`."""

    backend: Literal["sqlite", "memory"] = "sqlite"
    path: Path | None = None


@dataclass(frozen=True)
class ApprovalsSpec:
    """The `[approvals]` table: `ApprovalSettings` values, the HTTP token, and per-pattern default policies."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    http_token: Secret | None = None
    tools: tuple[tuple[str, Literal["allow", "deny", "ask"]], ...] = ()


@dataclass(frozen=True)
class McpServeSpec:
    """`[mcp.serve]`: how `bridge mcp serve` serves (command-line options win)."""

    http: tuple[str, int] | None = None
    token: Secret | None = None
    allowed_origins: tuple[str, ...] = ()
    name: str | None = None


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or just `PORT` (on 127.0.0.1) -> (host, port).

    Raises:
        ValueError: Not an address; the message shows the expected form.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (sep and not host):
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8765), got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Config:
    """A validated `bridge.toml`. Every field has a default, so `Config()` is the empty file."""

    toolsets: tuple[ToolsetSpec, ...] = ()
    agent: str | None = None
    sessions: tuple[str, ...] = ()
    timeout: float | None = None
    state_dir: Path | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)
    timeouts: Mapping[str, Any] = field(default_factory=dict)
    journal: JournalSpec = field(default_factory=JournalSpec)
    health_port: int | None = None
    health_host: str | None = None
    otel: bool = False
    approvals: ApprovalsSpec = field(default_factory=ApprovalsSpec)
    api_key: Secret | None = None
    base_url: str | None = None
    mcp_serve: McpServeSpec = field(default_factory=McpServeSpec)
    source: Path | None = None
    mcp_servers: tuple[Any, ...] = ()  # `_mcp.McpEntry`s, from [[mcp.servers]]


def load_config(path: str | Path, environ: Mapping[str, str]) -> Config:
    """Read and validate a config file.

    Args:
        path: The TOML file.
        environ: Where `{ env = "NAME" }` references are looked up (the CLI passes `os.environ`).

    Raises:
        ConfigError: The file is missing, is not TOML, or has any invalid entry (all of them are listed).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, environ, source=path)


def parse_config(data: Mapping[str, Any], environ: Mapping[str, str], *, source: Path | None = None) -> Config:
    """Validate parsed TOML data; see `load_config`."""
    checker = _Checker(environ)
    for key in data:
        if key not in _TOP_KEYS:
            checker.problem(key, f"unknown key{_did_you_mean(key, _TOP_KEYS)}")

    agent = checker.string(data, "agent")
    sessions = checker.string_list(data, "sessions")
    timeout = checker.positive_number(data, "timeout")
    state_dir = checker.string(data, "state_dir")

    api = checker.table(data, "api")
    checker.unknown(api, "api", ("api_key", "base_url"))
    api_key = checker.secret(api, "api.api_key")
    base_url = checker.string(api, "api.base_url")

    limits = checker.numbers(data, "limits")
    timeouts = checker.numbers(data, "timeouts")
    try:  # names and values checked by the runtime's own classes, so `tools` and `run` refuse the same files
        build_limits(_numeric(limits), _numeric(timeouts))
    except ConfigError as exc:
        checker.problems.extend(exc.problems)

    journal_table = checker.table(data, "journal")
    checker.unknown(journal_table, "journal", ("backend", "path"))
    backend = checker.string(journal_table, "journal.backend") or "sqlite"
    if backend not in _JOURNAL_BACKENDS:
        checker.problem("journal.backend", f"must be one of {', '.join(_JOURNAL_BACKENDS)}, got {backend!r}")
        backend = "sqlite"
    journal_path = checker.string(journal_table, "journal.path")
    if journal_path is not None and backend == "memory":
        checker.problem("journal.path", "has no meaning with backend = 'memory'")

    health = checker.table(data, "health")
    checker.unknown(health, "health", ("port", "host"))
    port = checker.port(health, "health.port")
    host = checker.string(health, "health.host")

    telemetry = checker.table(data, "telemetry")
    checker.unknown(telemetry, "telemetry", ("otel",))
    otel = telemetry.get("otel", False)
    if not isinstance(otel, bool):
        checker.problem("telemetry.otel", f"must be true or false, got {otel!r}")
        otel = False

    mcp_serve = checker.mcp_serve(checker.table(data, "mcp"))
    approvals = checker.approvals(checker.table(data, "approvals"))

    toolsets = checker.toolsets(data.get("toolsets"))
    mcp_servers = checker.mcp_servers(data)
    if checker.problems:
        where = f"{source}: " if source else ""
        raise ConfigError([f"{where}{p}" for p in checker.problems])
    return Config(
        toolsets=tuple(toolsets),
        agent=agent,
        sessions=tuple(sessions),
        timeout=timeout,
        state_dir=Path(state_dir) if state_dir else None,
        limits=dict(limits),
        timeouts=dict(timeouts),
        journal=JournalSpec(backend, Path(journal_path) if journal_path else None),  # type: ignore[arg-type]
        health_port=port,
        health_host=host,
        otel=otel,
        approvals=approvals,
        api_key=api_key,
        base_url=base_url,
        mcp_serve=mcp_serve,
        source=source,
        mcp_servers=tuple(mcp_servers),
    )


def build_limits(
    limits: Mapping[str, Any], timeouts: Mapping[str, Any], *, max_concurrency: int | None = None
) -> tuple[Limits, Timeouts]:
    """`Limits` and `Timeouts` from bridge.toml's [limits] / [timeouts] and --max-concurrency.

    Raises:
        ConfigError: Listing every unknown name and every invalid value of both tables.
    """
    problems: list[str] = []
    built: list[Any] = []
    overrides = {"max_concurrency": max_concurrency} if max_concurrency is not None else {}
    for cls, table, section, noun in ((Limits, limits, "limits", "limit"), (Timeouts, timeouts, "timeouts", "timeout")):
        known = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(table) - set(known))
        problems.extend(f"{section}.{key}: unknown {noun}{_did_you_mean(key, tuple(known))}" for key in unknown)
        values = {k: v for k, v in table.items() if k in known}
        if cls is Limits:
            values.update(overrides)
        try:
            built.append(cls(**values))
        except ConfigError as exc:
            problems.extend(f"{section}: {p}" for p in exc.problems)
            built.append(cls())
    if problems:
        raise ConfigError(problems)
    return built[0], built[1]


class _Checker:
    """Reads typed values out of TOML tables, noting each problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    @staticmethod
    def _get(table: Mapping[str, Any], dotted: str) -> Any:
        return table.get(dotted.rsplit(".", 1)[-1])

    def unknown(self, table: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{where}.{key}", f"unknown key{_did_you_mean(key, allowed)}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(key, f"must be a table ([{key}]), got {_kind(value)}")
            return {}
        return value

    def numbers(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        """A table whose values must all be numbers (names are checked against the runtime's class later)."""
        table = self.table(data, key)
        for name, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.problem(f"{key}.{name}", f"must be a number, got {_kind(value)}")
        return table

    def string(self, table: Mapping[str, Any], key: str) -> str | None:
        value = self._get(table, key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, f"must be a non-empty string, got {_kind(value)}")
            return None
        return value

    def string_list(self, table: Mapping[str, Any], key: str) -> list[str]:
        value = self._get(table, key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(key, f"must be a list of strings, got {_kind(value)}")
            return []
        return list(value)

    def positive_number(self, table: Mapping[str, Any], key: str) -> float | None:
        value = self._get(table, key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(key, f"must be a positive number of seconds, got {value!r}")
            return None
        return float(value)

    def port(self, table: Mapping[str, Any], key: str) -> int | None:
        value = self._get(table, key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            self.problem(key, f"must be a port number (0-65535), got {value!r}")
            return None
        return value

    def secret(self, table: Mapping[str, Any], key: str) -> Secret | None:
        value = self._get(table, key)
        if value is None:
            return None
        self.plain_secrets(key, value)
        resolved = self.resolve(value, key)
        return resolved if isinstance(resolved, Secret) else None

    def plain_secrets(self, key: str, value: Any) -> None:
        """Refuse secrets written as values: the file gets committed, copied and printed; the environment does not."""
        if isinstance(value, Mapping):
            if "env" not in value:
                for k, v in value.items():
                    self.plain_secrets(f"{key}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.plain_secrets(f"{key}[{i}]", v)
        elif isinstance(value, str) and value:
            name = key.rsplit(".", 1)[-1].split("[", 1)[0]
            if _SECRET_NAME.search(name) or _URL_PASSWORD.search(value):
                what = "a password inside a URL" if _URL_PASSWORD.search(value) else "a secret"
                self.problem(
                    key,
                    f"{what} written in plain text; secrets come from the environment: "
                    f'{name} = {{ env = "VARIABLE_NAME" }}',
                )

    def resolve(self, value: Any, key: str) -> Any:
        """Replace `{ env = "NAME" }` references (at any depth) by `Secret`s; note missing variables."""
        if isinstance(value, Mapping):
            if "env" in value:
                name = value["env"]
                if set(value) != {"env"} or not isinstance(name, str) or not name:
                    self.problem(key, 'a secret reference is written { env = "VARIABLE_NAME" } and nothing else')
                    return None
                if name not in self.environ:
                    self.problem(key, f"environment variable {name} is not set")
                    return None
                return Secret(self.environ[name], name)
            return {k: self.resolve(v, f"{key}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    def mcp_serve(self, mcp: Mapping[str, Any]) -> McpServeSpec:
        """`[mcp.serve]` (each `bridge mcp` command owns one `[mcp.*]` table)."""
        self.unknown(mcp, "mcp", ("serve", "servers"))
        table = mcp.get("serve", {})
        if not isinstance(table, Mapping):
            self.problem("mcp.serve", f"must be a table ([mcp.serve]), got {_kind(table)}")
            return McpServeSpec()
        self.unknown(table, "mcp.serve", ("http", "token", "allowed_origins", "name"))
        http = None
        text = self.string(table, "mcp.serve.http")
        if text is not None:
            try:
                http = parse_address(text)
            except ValueError as exc:
                self.problem("mcp.serve.http", str(exc))
        token = None
        if "token" in table:
            token = self.resolve(table["token"], "mcp.serve.token")
            if token is not None and not isinstance(token, Secret):
                self.problem("mcp.serve.token", 'must come from the environment: token = { env = "VARIABLE_NAME" }')
                token = None
        origins = self.string_list(table, "mcp.serve.allowed_origins")
        return McpServeSpec(http, token, tuple(origins), self.string(table, "mcp.serve.name"))

    def approvals(self, table: Mapping[str, Any]) -> ApprovalsSpec:
        self.unknown(table, "approvals", _APPROVAL_KEYS)
        settings: dict[str, Any] = {}
        for key in ("timeout", "poll_interval"):
            if (number := self.positive_number(table, f"approvals.{key}")) is not None:
                settings[key] = number
        on_timeout = self.string(table, "approvals.on_timeout")
        if on_timeout is not None and on_timeout not in ("deny", "allow"):
            self.problem("approvals.on_timeout", f"must be 'deny' or 'allow', got {on_timeout!r}")
        elif on_timeout is not None:
            settings["on_timeout"] = on_timeout
        token = None
        if "http_token" in table:
            value = table["http_token"]
            if not isinstance(value, Mapping):
                self.problem(
                    "approvals.http_token", 'must come from the environment: http_token = { env = "VARIABLE_NAME" }'
                )
            else:
                resolved = self.resolve(value, "approvals.http_token")
                token = resolved if isinstance(resolved, Secret) else None
        tools_table = table.get("tools", {})
        patterns: list[tuple[str, Any]] = []
        if not isinstance(tools_table, Mapping):
            self.problem("approvals.tools", f'must be a table of "pattern" = "policy", got {_kind(tools_table)}')
        else:
            for pattern, policy in tools_table.items():
                if policy not in _POLICIES:
                    self.problem(f"approvals.tools.{pattern}", f"must be one of {', '.join(_POLICIES)}, got {policy!r}")
                else:
                    patterns.append((pattern, policy))
        return ApprovalsSpec(settings, token, tuple(patterns))

    def toolsets(self, value: Any) -> list[ToolsetSpec]:
        if value is None:
            return []
        if isinstance(value, Mapping):
            entries = [(f"toolsets.{name}", name, entry) for name, entry in value.items()]
        elif isinstance(value, list):
            entries = [(f"toolsets[{i}]", None, entry) for i, entry in enumerate(value)]
        else:
            self.problem("toolsets", f"must be tables ([toolsets.NAME]), got {_kind(value)}")
            return []
        specs = []
        for where, name, entry in entries:
            if not isinstance(entry, Mapping):
                self.problem(where, f"must be a table, got {_kind(entry)}")
                continue
            use = entry.get("use")
            if not isinstance(use, str) or ":" not in use:
                example = 'use = "toolkits.database:sqlite_toolset"'
                self.problem(f"{where}.use", f"required: the TARGET to load, e.g. {example}")
                continue
            prefix = entry.get("prefix")
            if prefix is not None and (not isinstance(prefix, str) or not prefix):
                self.problem(f"{where}.prefix", f"must be a non-empty string, got {_kind(prefix)}")
                prefix = None
            for k, v in entry.items():
                if k not in _TOOLSET_KEYS:
                    self.plain_secrets(f"{where}.{k}", v)
            options = {k: self.resolve(v, f"{where}.{k}") for k, v in entry.items() if k not in _TOOLSET_KEYS}
            specs.append(ToolsetSpec(name=name or use, use=use, options=options, prefix=prefix))
        return specs

    def mcp_servers(self, data: Mapping[str, Any]) -> list[Any]:
        """`[[mcp.servers]]`: each a `mcpServers`-style entry plus `name` and `mcp_toolset` options."""
        from ._mcp import OPTION_KEYS, McpEntry

        table = self.table(data, "mcp")  # its unknown keys are reported by mcp_serve
        servers = table.get("servers", [])
        if not isinstance(servers, list):
            self.problem("mcp.servers", "must be an array of tables ([[mcp.servers]])")
            return []
        entries: list[Any] = []
        for i, entry in enumerate(servers):
            where = f"mcp.servers[{i}]"
            if not isinstance(entry, Mapping):
                self.problem(where, f"must be a table, got {_kind(entry)}")
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                self.problem(f"{where}.name", "required: the server's name (logs, pins, default tool prefix)")
                continue
            self.unknown(entry, where, _MCP_SERVER_KEYS + OPTION_KEYS)
            approval = entry.get("approval")
            if approval is not None:
                self.mcp_approval(approval, f"{where}.approval")
            resolved = reveal(self.resolve({k: v for k, v in entry.items() if k != "approval"}, where))
            options = {k: resolved.pop(k) for k in OPTION_KEYS if k in resolved}
            if approval is not None:
                options["approval"] = approval
            del resolved["name"]
            entries.append(McpEntry(name, resolved, options))
        return entries

    def mcp_approval(self, value: Any, where: str) -> None:
        """`approval = "ask"`, or `approval = { default = "allow", tools = { "delete_*" = "ask" } }`."""
        form = 'one of allow, deny, ask, or a table { default = "allow", tools = { "delete_*" = "ask" } }'
        if isinstance(value, str):
            if value not in _POLICIES:
                self.problem(where, f"must be {form}, got {value!r}")
            return
        if not isinstance(value, Mapping):
            self.problem(where, f"must be {form}, got {_kind(value)}")
            return
        self.unknown(value, where, ("default", "tools"))
        if "default" in value and value["default"] not in _POLICIES:
            self.problem(f"{where}.default", f"must be one of {', '.join(_POLICIES)}, got {value['default']!r}")
        tools = value.get("tools", {})
        if not isinstance(tools, Mapping):
            self.problem(f"{where}.tools", f'must be a table of "pattern" = "policy", got {_kind(tools)}')
            return
        for pattern, policy in tools.items():
            if policy not in _POLICIES:
                self.problem(f"{where}.tools.{pattern}", f"must be one of {', '.join(_POLICIES)}, got {policy!r}")


def _numeric(table: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _did_you_mean(key: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(choices)})"
