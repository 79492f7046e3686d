"""The ZFS command-line adapter: argv builders, executor, parsers, and the gateway implementing the ports."""
