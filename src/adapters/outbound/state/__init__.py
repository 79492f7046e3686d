"""Server state by backend: memory (one process), sqlite (a file under state_dir) and redis (shared), each with
its session, revocation and job stores; the job record codec and the store rules all backends share."""
