"""The materialize protocol's order, as a pure state machine: messages in, actions out.

No I/O happens here. The shell feeds every request to :meth:`Session.receive` and tells
it when a commit it started has become durable (:meth:`Session.commit_durable`); the
session answers with the actions the shell must take, in order. That keeps the
exactly-once rules in one small place that property tests can drive exhaustively:

- ``Open`` comes first (``Spec``/``Validate``/``Apply`` only before it, each answered once);
- then the runtime's ``Acknowledge`` of the recovery commit;
- then per transaction ``Load* Flush Store* StartCommit`` followed by the runtime's
  ``Acknowledge`` of that commit. The next transaction's Loads may arrive before the
  connector has sent ``Acknowledged``: they are staged, never evaluated, until it has —
  loads read committed data only;
- ``Acknowledged`` goes out once per commit, when the runtime has acknowledged it AND the
  destination commit is durable, whichever happens last.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from afterload.flow.errors import ProtocolError
from afterload.flow.request import (
    NAMES,
    Acknowledge,
    Apply,
    Flush,
    Load,
    Open,
    Request,
    Spec,
    StartCommit,
    Store,
    Validate,
)


class Phase(Enum):
    IDLE = "before Open"
    AWAIT_ACKNOWLEDGE = "awaiting Acknowledge"
    LOADING = "loading"
    STORING = "storing"
    CLOSED = "closed"


# --- Actions: what the shell must do, in the order given. ---------------------------------


@dataclass(frozen=True)
class Answer:
    """Answer a unary request (Spec, Validate or Apply) with its response."""

    request: Spec | Validate | Apply


@dataclass(frozen=True)
class OpenSession:
    """Connect, raise the fence for ``open.range``, send ``Opened`` with the last checkpoint."""

    open: Open


@dataclass(frozen=True)
class StageLoad:
    """Keep this key for the bulk lookup at Flush; do NOT read the destination yet."""

    load: Load


@dataclass(frozen=True)
class EvaluateLoads:
    """The previous commit is durable and acknowledged: look up every staged key, send
    ``Loaded`` for those that exist (each at most once), then ``Flushed``."""

    count: int


@dataclass(frozen=True)
class ApplyStore:
    """Add this document to the transaction (insert, update, delete or append)."""

    store: Store


@dataclass(frozen=True)
class StartCommitAction:
    """Commit data, ``checkpoint`` and fence in one destination transaction, send
    ``StartedCommit``, and report durability with :meth:`Session.commit_durable`."""

    checkpoint: dict[str, object]
    stores: int


@dataclass(frozen=True)
class SendAcknowledged:
    """Send ``Acknowledged`` (after any sync-schedule delay); ``stores`` is how many
    documents the acknowledged transaction stored (0 for the recovery commit)."""

    stores: int
    recovery: bool


Action = (
    Answer
    | OpenSession
    | StageLoad
    | EvaluateLoads
    | ApplyStore
    | StartCommitAction
    | SendAcknowledged
)


class Session:
    """One connector session's protocol state. Methods return the actions to take."""

    def __init__(self) -> None:
        self.phase = Phase.IDLE
        self._delta: list[bool] = []
        self._acknowledged_by_runtime = False
        self._durable = False
        self._acknowledged_sent = False
        self._recovery = True
        self._loads = 0
        self._stores = 0
        self._committing_stores = 0
        self.transactions = 0

    # --- helpers -------------------------------------------------------------------------

    def _violation(self, request: Request | str, detail: str = "") -> ProtocolError:
        name = request if isinstance(request, str) else NAMES[type(request)]
        tail = f" ({detail})" if detail else ""
        return ProtocolError(f"protocol violation: received {name} while {self.phase.value}{tail}")

    def _check_binding(self, request: Load | Store) -> None:
        if request.binding >= len(self._delta):
            raise self._violation(
                request, f"binding {request.binding} does not exist; Open has {len(self._delta)}"
            )

    def _maybe_acknowledge(self) -> list[Action]:
        if self._acknowledged_by_runtime and self._durable and not self._acknowledged_sent:
            self._acknowledged_sent = True
            return [SendAcknowledged(stores=self._committing_stores, recovery=self._recovery)]
        return []

    # --- events --------------------------------------------------------------------------

    def _before_open(self, request: Spec | Validate | Apply | Open) -> list[Action]:
        if self.phase is not Phase.IDLE:
            raise self._violation(request)
        if not isinstance(request, Open):
            return [Answer(request)]
        self._delta = [b.delta_updates for b in request.materialization.bindings]
        self.phase = Phase.AWAIT_ACKNOWLEDGE
        # The recovery commit is whatever the destination already holds: durable.
        self._durable = True
        self._acknowledged_by_runtime = False
        self._acknowledged_sent = False
        self._recovery = True
        self._committing_stores = 0
        return [OpenSession(request)]

    def _load(self, request: Load) -> list[Action]:
        if self.phase is not Phase.LOADING:
            raise self._violation(request)
        self._check_binding(request)
        if self._delta[request.binding]:
            raise self._violation(
                request, f"binding {request.binding} is delta-updates and never loads"
            )
        self._loads += 1
        return [StageLoad(request)]

    def receive(self, request: Request) -> list[Action]:
        """The next request from the runtime → the actions it calls for."""
        if self.phase is Phase.CLOSED:
            raise self._violation(request)
        match request:
            case Spec() | Validate() | Apply() | Open():
                return self._before_open(request)
            case Acknowledge():
                if self.phase is not Phase.AWAIT_ACKNOWLEDGE:
                    raise self._violation(request)
                self._acknowledged_by_runtime = True
                self.phase = Phase.LOADING
                self._loads = 0
                return self._maybe_acknowledge()
            case Load():
                return self._load(request)
            case Flush():
                if self.phase is not Phase.LOADING:
                    raise self._violation(request)
                if not self._acknowledged_sent:
                    raise self._violation(
                        request, "the runtime flushes only after it has received Acknowledged"
                    )
                self.phase = Phase.STORING
                self._stores = 0
                return [EvaluateLoads(self._loads)]
            case Store():
                self.accept_store(request.binding, request.exists)
                return [ApplyStore(request)]
            case StartCommit():
                if self.phase is not Phase.STORING:
                    raise self._violation(request)
                self.phase = Phase.AWAIT_ACKNOWLEDGE
                self._durable = False
                self._acknowledged_by_runtime = False
                self._acknowledged_sent = False
                self._recovery = False
                self._committing_stores = self._stores
                self.transactions += 1
                return [StartCommitAction(request.runtime_checkpoint, self._stores)]
        raise self._violation(type(request).__name__)  # pragma: no cover - exhaustive

    def accept_store(self, binding: int, exists: bool) -> None:
        """The checks of one Store, without a model: the shell's hot path calls this directly
        and applies the Store itself (the one action a Store ever calls for)."""
        if self.phase is not Phase.STORING:
            raise self._violation("Store")
        if binding >= len(self._delta):
            raise self._violation(
                "Store", f"binding {binding} does not exist; Open has {len(self._delta)}"
            )
        if exists and self._delta[binding]:
            raise self._violation("Store", f"binding {binding} is delta-updates: nothing exists")
        self._stores += 1

    def commit_durable(self) -> list[Action]:
        """The shell's report: the commit of the last StartCommit is durable."""
        if self._recovery or self._durable:
            raise ProtocolError(
                f"internal error: commit reported durable while {self.phase.value} "
                "with no commit in flight"
            )
        self._durable = True
        return self._maybe_acknowledge()

    def end(self) -> None:
        """End of the request stream: clean only between transactions."""
        if self.phase is Phase.IDLE or (self.phase is Phase.LOADING and self._loads == 0):
            self.phase = Phase.CLOSED
            return
        if self.phase is Phase.AWAIT_ACKNOWLEDGE and self._durable:
            # The runtime stopped before acknowledging: the commit is safe in the
            # destination, and the next session's Opened hands its checkpoint back.
            self.phase = Phase.CLOSED
            return
        raise ProtocolError(
            f"protocol violation: the request stream ended while {self.phase.value}"
        )

    @property
    def awaiting_durability(self) -> bool:
        """True while a started commit has not been reported durable."""
        return not self._recovery and not self._durable and self.phase is not Phase.IDLE
