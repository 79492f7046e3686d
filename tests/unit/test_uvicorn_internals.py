"""The uvicorn internals peer.PeerAwareHttpTools relies on (to hand a stream's socket over for splicing, see
zfsapi.adapters.inbound.http.stream_bodies) are still there: a uvicorn release that moves one fails here, naming
it, rather than in a stream. pyproject.toml bounds uvicorn to the releases checked so."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from zfsapi.adapters.inbound.http.peer import PeerAwareHttpTools

# (class, attributes set on self by the class (instance state), methods of the class) that peer.py uses
USED = [
    (HttpToolsProtocol, {"cycle", "flow", "transport", "scope", "loop"}, {"connection_made", "on_message_begin", "on_body"}),
    (RequestResponseCycle, {"response_started", "response_complete", "chunked_encoding", "disconnected",
                            "keep_alive", "waiting_for_100_continue", "body", "scope"}, set()),
    (FlowControl, set(), {"pause_reading"}),
]


def _assigned(cls: type) -> set[str]:
    """The attributes the class's own code assigns on `self` (its instance state, wherever it is set)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}


@pytest.mark.parametrize(("cls", "attributes", "methods"), USED, ids=[c.__name__ for c, _, _ in USED])
def test_the_uvicorn_internals_peer_py_relies_on_are_there(cls: type, attributes: set[str], methods: set[str]) -> None:
    missing = sorted(attributes - _assigned(cls))
    assert not missing, f"uvicorn {cls.__module__}.{cls.__name__} no longer sets {missing}: peer.py relies on them"
    for name in sorted(methods):
        assert callable(getattr(cls, name, None)), \
            f"uvicorn {cls.__module__}.{cls.__name__}.{name} is gone: peer.py relies on it"


def test_the_cycle_reads_its_request_body_from_the_attribute_peer_py_empties() -> None:
    """Handing the body over empties `cycle.body`: the cycle's `receive` must be what reads it."""
    source = inspect.getsource(RequestResponseCycle.receive)
    assert "self.body" in source, "uvicorn's RequestResponseCycle.receive no longer reads self.body: peer.py " \
                                  "empties it to hand the request body over"


def test_peer_py_extends_the_protocol_it_checks() -> None:
    assert issubclass(PeerAwareHttpTools, HttpToolsProtocol)
    overridden = {"connection_made", "on_message_begin", "on_body"}
    assert overridden <= set(vars(PeerAwareHttpTools)), "peer.py overrides these; the checks above cover them"


def test_every_place_uvicorns_supervisor_starts_a_worker_is_one_the_supervisor_wraps() -> None:
    """lifecycle.Supervisor starts workers with SIGHUP blocked by wrapping the Multiprocess methods that call
    `start()`: a release that starts workers from another method fails here, naming it."""
    from uvicorn.supervisors.multiprocess import Multiprocess

    from zfsapi.bootstrap.lifecycle import Supervisor

    starting = {name for name, fn in vars(Multiprocess).items() if callable(fn)
                and ".start()" in inspect.getsource(fn)}
    assert starting, "uvicorn's Multiprocess no longer starts workers with .start(): lifecycle.Supervisor relies on it"
    unwrapped = sorted(starting - set(vars(Supervisor)))
    assert not unwrapped, f"uvicorn's Multiprocess starts workers in {unwrapped}: lifecycle.Supervisor must wrap them"
