"""Where alerts go: webhooks."""
