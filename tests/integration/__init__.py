"""Integration tests: the whole local cloud over HTTP."""
