"""perfgate where CI looks: GitHub annotations and pull-request comments, alerts.

annotate.py  GitHub workflow commands for failing, marginal and inconclusive items
github.py    the one pull-request comment, through the REST API
notify.py    Slack and email alerts on the default branch
"""
