"""The command-line client: `zfsapi call`, `migrate` and `jobs` calling a server through zfsapi.protocol's
client, with a progress display. zfsapi.bootstrap.cli parses the arguments and hands them over."""
