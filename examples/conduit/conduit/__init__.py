"""Conduit: a Medium-like blogging API (the RealWorld spec), on FastAPI and SQLAlchemy 2."""
