"""WedSync: a small wedding-supplier API on PostgreSQL, the target of perfgate's example gate."""
