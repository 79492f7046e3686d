"""JSON-RPC 2.0 on msgspec: protocol, method registry, dispatcher and the error table."""
