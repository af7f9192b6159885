"""Clustering: members sharing one dqlite database."""
