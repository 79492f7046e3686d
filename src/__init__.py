"""zfsapi: a ZFS management server (JSON-RPC 2.0 over HTTP) and an embeddable library of ZFS use cases."""

__version__ = "0.2.0"
