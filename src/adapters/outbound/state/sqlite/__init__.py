"""State in SQLite files under state_dir, surviving a restart without Redis: token revocations and jobs."""
