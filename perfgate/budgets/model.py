"""The validated budgets file as frozen values (``reader.py`` reads the YAML into these)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.plan.rules import RULE_IDS, SEVERITIES
from perfgate.probes.wire import DEFAULT_MAX_RESPONSE_BYTES

SCHEMA_VERSION = 1
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PLAN_RULES = RULE_IDS  # the rule ids are the plan reader's; budgets.yaml names them
RULE_LEVELS = SEVERITIES

# Endpoint budget keys and the unit each is written in.
ENDPOINT_BUDGET_KEYS: dict[str, str] = {
    "p50_ms": "duration",
    "p90_ms": "duration",
    "p95_ms": "duration",
    "p99_ms": "duration",
    "mean_ms": "duration",
    "max_ms": "duration",
    "server_p95_ms": "duration",
    "error_rate": "ratio",
    "cache_hit_ratio": "ratio",
    "min_throughput_rps": "number",
    "max_bytes": "size",
    # What each request does to the database (pg_stat_statements; perfgate/verdict/database.py)
    "max_queries_per_request": "count",
    "max_rows_per_request": "count",
    "max_buffers_per_request": "count",
    "max_db_ms_per_request": "duration",
    "max_statement_mean_ms": "duration",
    "min_db_cache_hit_ratio": "ratio",
    "max_connections_ratio": "ratio",
}
DATABASE_BUDGET_KEYS = frozenset(
    {
        "max_queries_per_request",
        "max_rows_per_request",
        "max_buffers_per_request",
        "max_db_ms_per_request",
        "max_statement_mean_ms",
        "min_db_cache_hit_ratio",
        "max_connections_ratio",
    }
)
# Budgets are upper limits except these, which are lower limits.
LOWER_LIMITS = frozenset({"cache_hit_ratio", "min_throughput_rps", "min_db_cache_hit_ratio"})

QUERY_BUDGET_KEYS: dict[str, str] = {
    "execution_ms": "duration",
    "planning_ms": "duration",
    "max_buffers": "count",
    "max_rows": "count",
    "max_temp_blocks": "count",
}
REGRESSION_METRICS = ("p50", "p90", "p95", "p99", "mean", "execution")


@dataclass(frozen=True, slots=True)
class RegressionPolicy:
    """How a timing metric is compared with the baseline."""

    metric: str = "p95"
    threshold: float = 0.10
    confidence: float = 0.99
    max_rounds: int = 3
    fail_on_inconclusive: bool = False
    # The smallest absolute change that counts, in ms (None: MIN_EFFECT_MS for the item's kind):
    # a change under it is not a regression (or an improvement) however significant.
    min_effect_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """What to send: the request line, headers, a JSON or raw body, the statuses accepted."""

    method: str
    path: str  # with its query string; may hold {login...}, {seq}, {uuid}
    headers: Mapping[str, str] = field(default_factory=dict)
    json: object = None  # a JSON body, as YAML gave it
    body: str | None = None
    expect_status: frozenset[int] | None = None  # besides 2xx


@dataclass(frozen=True, slots=True, kw_only=True)
class Login(Request):
    """A request sent once per target before any endpoint; ``{login.PATH}`` reads its answer."""

    line: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """The system under test: exactly one of command, app or base_url."""

    kind: str  # "command" | "app" | "base_url" | "none"
    value: str
    ready: str = "/healthz"
    ready_timeout_s: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    login: Login | None = None


@dataclass(frozen=True, slots=True)
class SqlFile:
    """A setup step: a SQL file run statement by statement (``sqlscript.py``)."""

    path: Path


@dataclass(frozen=True, slots=True)
class SetupCommand:
    """A setup step: a program run with the scratch database's URL, e.g. migrations."""

    command: str  # may hold {dsn}, {dsn_host}, ...
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = Path()
    timeout_s: float = 600.0


SetupStep = SqlFile | SetupCommand


@dataclass(frozen=True, slots=True)
class Database:
    """Where the scratch database comes from and what is loaded into it."""

    dsn: str | None = None
    setup: tuple[SetupStep, ...] = ()
    enabled: bool = False
    isolate: bool = True  # each item starts from the database as setup left it


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values every endpoint and query inherits unless it sets its own."""

    requests: int = 300
    concurrency: int = 10
    warmup: int = 30
    timeout_ms: float = 10_000.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a longer body is a request error
    runs: int = 15
    statement_timeout_ms: float = 30_000.0
    confidence: float = 0.95
    plan_rules: Mapping[str, str] = field(
        default_factory=lambda: dict.fromkeys(PLAN_RULES, "warning")
    )
    seq_scan_min_pages: int = 8
    regression: RegressionPolicy = field(default_factory=RegressionPolicy)
    db_probes: int = 5  # requests sent one at a time to count their statements (0: none)
    n_plus_one: str = "warning"  # the N+1 finding's level: warning, error or off
    n_plus_one_repeats: int = 5  # one statement this many times in one request is an N+1


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint(Request):
    """One endpoint: its request, how hard to send it, and its budget."""

    name: str
    requests: int = 300
    concurrency: int = 10
    warmup: int = 30
    timeout_ms: float = 10_000.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    budget: Mapping[str, float] = field(default_factory=dict)
    regression: RegressionPolicy = field(default_factory=RegressionPolicy)
    db_probes: int = 5
    n_plus_one: str = "warning"
    n_plus_one_repeats: int = 5
    line: int | None = None


@dataclass(frozen=True, slots=True)
class QueryBudget:
    """Limits for one gated query."""

    limits: Mapping[str, float] = field(default_factory=dict)
    no_seq_scan: bool = False
    forbid: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """One gated SQL statement."""

    name: str
    sql: str
    params: tuple[Any, ...] = ()
    runs: int = 15
    setup_sql: tuple[str, ...] = ()
    require_index: bool = False
    generic_plan: bool = False
    statement_timeout_ms: float = 30_000.0
    budget: QueryBudget = field(default_factory=QueryBudget)
    regression: RegressionPolicy = field(default_factory=RegressionPolicy)
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A whole budgets file."""

    path: Path
    target: Target
    database: Database
    defaults: Defaults
    endpoints: tuple[Endpoint, ...]
    queries: tuple[Query, ...]
    secrets: tuple[str, ...] = ()  # environment values sent to the target; masked in output

    @property
    def root(self) -> Path:
        """Relative paths in the file are relative to its directory."""
        return self.path.parent
