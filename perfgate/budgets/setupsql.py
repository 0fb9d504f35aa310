"""What a query's ``setup_sql`` may not do: end, split or reset the transaction it runs in.

Every EXPLAIN ANALYZE run is one transaction, rolled back, that first sets the settings perfgate
pins (``PINNED``) with ``SET LOCAL`` and then runs ``setup_sql``. A ``COMMIT`` there would keep
what ran before it; ``COMMIT AND CHAIN`` would also start a fresh transaction without the pinned
settings, so the run would go on unbounded by ``statement_timeout``, and nothing would say so;
``RESET ALL`` or a ``SET`` of a pinned setting would undo them in place. PostgreSQL's own parser
(pglast) reads each statement, so ``;COMMIT`` or a comment in front does not hide one. The probe
also checks at run time that the transaction and the pinned settings survived (for what no parser
sees, such as ``SELECT set_config(...)``).
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.enums import TransactionStmtKind, VariableSetKind
from pglast.parser import ParseError

__all__ = ["PINNED", "setup_sql_problem"]

# Set LOCAL for every run by probes/postgres.py; statement_timeout comes from the query's key.
PINNED = ("jit", "max_parallel_workers_per_gather", "plan_cache_mode", "statement_timeout")

_WORDS: dict[object, str] = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN",
    TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT",
    TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
    TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
}


def setup_sql_problem(sql: str) -> str | None:
    """Why ``sql`` cannot be a setup_sql entry (None: one statement that keeps the transaction)."""
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return f"cannot parse the SQL: {exc}"
    if len(statements) != 1:
        return (
            f"expected one SQL statement, got {len(statements)} (give each statement its own "
            "setup_sql entry)"
        )
    stmt = statements[0].stmt
    if isinstance(stmt, ast.TransactionStmt):
        word = _WORDS.get(stmt.kind, "transaction control")
        if getattr(stmt, "chain", False):
            word += " AND CHAIN"
        elif word in ("COMMIT", "ROLLBACK"):
            word += " (or END)" if word == "COMMIT" else " (or ABORT)"
        return (
            f"{word} is not allowed in setup_sql: it runs inside the transaction that each "
            "measured run is rolled back in, and may not end, split or release it"
        )
    if isinstance(stmt, ast.VariableSetStmt):
        if stmt.kind == VariableSetKind.VAR_RESET_ALL:
            return (
                f"RESET ALL would undo the settings perfgate pins for the run ({', '.join(PINNED)})"
            )
        if stmt.name in PINNED:
            hint = (
                " (set the query's statement_timeout key)"
                if stmt.name == "statement_timeout"
                else ""
            )
            return (
                f"{stmt.name} is pinned by perfgate for the run and may not be changed here{hint}"
            )
        if stmt.name == "SESSION CHARACTERISTICS":
            return (
                "SET SESSION CHARACTERISTICS sets later transactions' defaults, and setup_sql's "
                "transaction is rolled back: use SET TRANSACTION"
            )
    return None
