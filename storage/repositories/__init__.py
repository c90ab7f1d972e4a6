"""Queries over the models. Repositories never commit: the caller owns the unit of work."""
