"""Tokens saved by `zfsapi login`: one per server, readable by their user only, expired ones never offered."""

from __future__ import annotations

import os
import stat
import time

from zfsapi.adapters.inbound.cli.saved_tokens import SavedToken, SavedTokens, token_file


def test_saved_per_server_for_its_user_only(tmp_path):
    tokens = SavedTokens(token_file({"XDG_CONFIG_HOME": str(tmp_path / "cfg")}))
    assert tokens.path == tmp_path / "cfg" / "zfsapi" / "tokens.json"
    assert tokens.get("http://a:1") is None
    tokens.save("http://a:1/", SavedToken("tok-a", "alice", time.time() + 600))
    tokens.save("http://b:2", SavedToken("tok-b", "bob", time.time() + 600))
    assert tokens.get("http://a:1").token == "tok-a" and tokens.get("http://b:2/").user == "bob"
    assert stat.S_IMODE(os.stat(tokens.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tokens.path.parent).st_mode) == 0o700
    assert [p.name for p in tokens.path.parent.iterdir()] == ["tokens.json"]  # no temporary file left
    assert tokens.remove("http://a:1").token == "tok-a"
    assert tokens.get("http://a:1") is None and tokens.get("http://b:2").token == "tok-b"
    assert tokens.remove("http://a:1") is None


def test_expired_and_damaged_tokens_are_not_offered(tmp_path):
    tokens = SavedTokens(tmp_path / "t.json")
    tokens.save("http://a:1", SavedToken("old", "alice", time.time() - 1))
    assert tokens.get("http://a:1") is None
    tokens.save("http://b:1", SavedToken("new", "bob", time.time() + 60))
    assert "old" not in tokens.path.read_text()  # dropped at the next change
    tokens.path.write_text("{not json")
    assert tokens.get("http://b:1") is None
    tokens.save("http://b:1", SavedToken("again", "bob", time.time() + 60))
    assert tokens.get("http://b:1").token == "again"
