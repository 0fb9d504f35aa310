"""budgets.yaml → ``Config``: the model, the reader, YAML positions, units and placeholders.

model.py         the frozen values a budgets file becomes (Config, Target, Endpoint, Query, ...)
reader.py        load_config / parse_config: the top level, target, database, defaults
scenarios.py     endpoints, login and queries (also when written in test code)
fields.py        values several sections share: limits, durations, counts, headers, env
yamlsource.py    YAML with line numbers, ${VAR} interpolation, strict keys, located errors
yamllimits.py    bounds on the YAML itself: depth, aliases expanded, recursive anchors
checks.py        values that leave perfgate: headers, paths, env, URLs and DSNs, SQL files
jsonbody.py      a request's json: YAML values made JSON (dates as ISO text)
setupsql.py      what a query's setup_sql may not do to its rolled-back transaction
units.py         "200ms", "64KiB", "85%": parsing and formatting
placeholders.py  {port}, {dsn}, {login.PATH}, {seq}, {uuid}: where each may go, and filling
namedsql.py      SQL from the app's files: aiosql-style named queries, :name parameters
"""

from __future__ import annotations

from perfgate.budgets.model import Config
from perfgate.budgets.reader import load_config, parse_config
from perfgate.budgets.scenarios import endpoint_from_mapping, query_from_mapping

__all__ = ["Config", "endpoint_from_mapping", "load_config", "parse_config", "query_from_mapping"]
