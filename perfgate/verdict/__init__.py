"""Measurement → verdict: metrics with intervals, budget checks, comparisons with a baseline.

model.py        the values every report renders: Metric, Check, Comparison, Result, GateReport
endpoint.py     an endpoint run's metrics and budget checks
query.py        a query measurement's metrics, budget checks, plan assertions and rules
compare.py      one result against its baseline, metric by metric
timing.py       the timing rule: relative change, block bootstrap interval, rank test
exact.py        deterministic metrics and plans, exactly or within a tolerance
environment.py  whether two runs were measured on comparable machines
pooling.py      a re-measurement round pooled into the result
"""
