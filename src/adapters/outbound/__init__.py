"""Outbound adapters: ZFS command line, session stores."""
