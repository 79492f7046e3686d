"""State in Redis, shared by every worker and server using it: revocations, rate limits, stream sessions, jobs."""
