"""Passwords on the command line: read without echo from a terminal, else one line of stdin."""

from __future__ import annotations

import getpass
import sys


def read_password(confirm: bool = True) -> str:
    """The password typed (twice when `confirm`, on a terminal). Exits with a message when the two differ or
    the password is empty."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != password:
            raise SystemExit("zfsapi: the passwords differ")
    if not password:
        raise SystemExit("zfsapi: empty password")
    return password
