"""Adapters that let other frameworks use a cascade as their model (imported only on demand)."""
