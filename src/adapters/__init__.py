"""Adapters: inbound (HTTP/JSON-RPC) drives the use cases; outbound implements their ports."""
