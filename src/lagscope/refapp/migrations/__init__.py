"""Migrations of the reference app."""
