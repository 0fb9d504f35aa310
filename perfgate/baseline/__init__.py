"""Baselines kept in git: one record per measured commit, and the choice of which to compare with.

record.py    BaselineRecord: the results of one run on one commit (schema 1)
store.py     the BaselineStore Protocol, DirStore, open_store("git" | "git:REF" | "dir:PATH")
gitstore.py  GitRefStore: an orphan branch in the same repository (why not notes: see there)
choose.py    find_baseline: merge-base with the base branch, then first parents back
gitcmd.py    git plumbing helpers, head_commit
"""

from __future__ import annotations

from perfgate.baseline.choose import find_baseline
from perfgate.baseline.gitcmd import head_commit
from perfgate.baseline.gitstore import DEFAULT_REF, GitRefStore, record_path
from perfgate.baseline.record import BASELINE_SCHEMA, BaselineRecord
from perfgate.baseline.store import BaselineStore, DirStore, open_store

__all__ = [
    "BASELINE_SCHEMA",
    "DEFAULT_REF",
    "BaselineRecord",
    "BaselineStore",
    "DirStore",
    "GitRefStore",
    "find_baseline",
    "head_commit",
    "open_store",
    "record_path",
]
