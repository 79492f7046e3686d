"""`zfsapi login` and `zfsapi logout`: a token kept between commands, so that a session of commands logs in once
(not once per command, which the login limit of 5 a minute would stop at the sixth).

The password is read from the terminal without echo, or from one line of stdin; never from the command line,
where other local users can read it (/proc/<pid>/cmdline)."""

from __future__ import annotations

import sys
import time

from zfsapi.protocol.blocking import BlockingClient
from zfsapi.protocol.client import NoAnswer
from zfsapi.protocol.envelope import RpcError

from .prompt import read_password
from .saved_tokens import SavedToken, SavedTokens


def run_login(url: str, user: str, tokens: SavedTokens) -> int:
    """Log in as `user` and save the token for `url`; 0, else 1 (refused) or 3 (no answer)."""
    password = read_password(confirm=False)
    with BlockingClient(url) as client:
        try:
            issued = client.call("auth_login", {"username": user, "password": password})
        except RpcError as exc:
            print(f"zfsapi: login refused: {exc.message} (code {exc.code})", file=sys.stderr)
            return 1
        except NoAnswer as exc:
            print(f"zfsapi: {exc}", file=sys.stderr)
            return 3
    tokens.save(url, SavedToken(issued["token"], user, time.time() + float(issued["expires_in"])))
    print(f"zfsapi: logged in to {url} as {user} until {issued['expires_at']} (token in {tokens.path})",
          file=sys.stderr)
    return 0


def run_logout(url: str, tokens: SavedTokens) -> int:
    """Revoke the saved token of `url` on the server (when it still answers and the token is live) and forget it
    here; 0, or 1 when none was saved."""
    saved = tokens.remove(url)
    if saved is None:
        print(f"zfsapi: no saved token for {url}", file=sys.stderr)
        return 1
    if saved.expires_at > time.time():
        with BlockingClient(url, saved.token) as client:
            try:
                client.call("auth_logout", {})
            except (RpcError, NoAnswer) as exc:  # forgotten here all the same; it expires on its own
                print(f"zfsapi: the server did not revoke it ({exc}); forgotten here", file=sys.stderr)
    print(f"zfsapi: logged out of {url}", file=sys.stderr)
    return 0
