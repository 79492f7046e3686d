"""State held in this process: token revocations, rate limits, stream sessions and jobs (tests, embedders, and
the session state of a server without Redis)."""
