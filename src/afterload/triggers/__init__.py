"""Trigger kinds: what afterload starts after data is committed."""
