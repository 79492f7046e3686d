"""Passwords on the command line: read without echo from a terminal, else one line of stdin."""

from __future__ import annotations

import getpass
import sys


MIN_NEW_PASSWORD = 8  # characters of a password being set (NIST SP 800-63B's minimum); logins take any


def read_password(confirm: bool = True) -> str:
    """The password typed (twice when `confirm`, on a terminal). Exits with a message when the two differ or
    the password is empty; a password being set (`confirm`) shorter than MIN_NEW_PASSWORD is refused too."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != password:
            raise SystemExit("zfsapi: the passwords differ")
    if not password:
        raise SystemExit("zfsapi: empty password")
    if confirm and len(password) < MIN_NEW_PASSWORD:
        raise SystemExit(f"zfsapi: a password needs at least {MIN_NEW_PASSWORD} characters")
    return password
