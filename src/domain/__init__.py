"""Pure domain: ZFS names, models, typed errors and planning decisions. Imports nothing of ours."""
