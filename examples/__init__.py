"""Example applications that perfgate's own gate runs against."""
