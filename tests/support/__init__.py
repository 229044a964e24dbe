"""Test support: real servers on loopback, started on port 0 and awaited on readiness."""
