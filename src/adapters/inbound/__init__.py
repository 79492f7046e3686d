"""Inbound adapters: the Litestar HTTP app, its JSON-RPC dispatcher, and the command-line client."""
