"""Inbound adapters: the Litestar HTTP app and its JSON-RPC dispatcher."""
