"""The connector's I/O shell: requests from stdin through the pure session to the destination.

:mod:`.machine` decides the order; this shell does what its actions say. Every Store of a
transaction goes into one core :class:`~afterload.core.transaction.Transaction` (keyed by the
packed key, so the last Store of a key wins), and StartCommit commits it through the core
:class:`~afterload.core.materializer.Materializer` with the runtime checkpoint in the typed
checkpoint's ``driver`` field: data, checkpoint and fence in one destination transaction.
The commit is synchronous, so it is durable before ``StartedCommit`` goes out, and
``Acknowledged`` follows as soon as the runtime has acknowledged it too.

Store lines are the hot path: they are read straight from the raw JSON (no model), the
rest through the protocol models.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from afterload.clock import SystemClock
from afterload.core import exactjson
from afterload.core.checkpoint import Checkpoint
from afterload.core.materializer import Materializer
from afterload.core.schema import TableShape
from afterload.core.transaction import BindingChanges, Transaction
from afterload.destinations.base import Destination
from afterload.destinations.factory import open_destination
from afterload.errors import AfterloadError
from afterload.flow import machine
from afterload.flow.ack_schedule import AckSchedule
from afterload.flow.codec import RequestReader, ResponseWriter
from afterload.flow.config import EndpointConfig, parse_endpoint, parse_resource
from afterload.flow.errors import ProtocolError
from afterload.flow.ranges import inherited, overlapping, range_name
from afterload.flow.request import Apply, Open, Spec, Store, Validate, parse_request
from afterload.flow.response import (
    Acknowledged,
    Applied,
    Flushed,
    Opened,
    StartedCommit,
    encode_loaded,
)
from afterload.flow.shared_trigger import SharedFires
from afterload.flow.spec import spec_response
from afterload.flow.tables import FlowTable
from afterload.flow.tuples import unpack
from afterload.flow.validation import applied_description, validated
from afterload.ndjson.sync_schedule import SyncPolicy
from afterload.triggers.base import TriggerAction
from afterload.triggers.dbt_cloud.action import DbtCloudAction
from afterload.triggers.thread import TriggerThread

log = logging.getLogger("afterload.flow")

_STORE_PREFIX = b'{"store":'


class FastStore(NamedTuple):
    """A Store read straight from raw JSON: the hot path builds no model."""

    binding: int
    key_packed: bytes
    values_packed: bytes
    doc: Any
    exists: bool
    delete: bool


def _fast_store(line: bytes) -> FastStore | None:
    """A plain Store line; None for anything else, which the model path reads and words."""
    if not line.startswith(_STORE_PREFIX):
        return None
    try:
        body = exactjson.loads(line)["store"]
        binding = body.get("binding", 0)
        exists = body.get("exists", False)
        delete = body.get("delete", False)
        if type(binding) is not int or binding < 0 or type(exists) is not bool:
            return None
        if type(delete) is not bool:
            return None
        return FastStore(
            binding,
            base64.b64decode(body.get("keyPacked", ""), validate=True),
            base64.b64decode(body.get("valuesPacked", ""), validate=True),
            body.get("doc"),
            exists,
            delete,
        )
    except Exception:
        return None


class Connector:
    """One connector process: answers requests until the runtime closes stdin."""

    def __init__(
        self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None, base_dir: Path = Path()
    ) -> None:
        self.reader = RequestReader(stdin)
        self.writer = ResponseWriter(stdout)
        self.session = machine.Session()
        self.base_dir = base_dir
        self.destination: Destination | None = None
        self.materializer: Materializer | None = None
        self.tables: list[FlowTable] = []
        self.endpoint: EndpointConfig | None = None
        self.staged: list[dict[bytes, bytes]] = []
        self.txn = Transaction()
        self.triggers: TriggerThread | None = None
        self.acks: AckSchedule | None = None
        self.clock = SystemClock()
        self._last_commit: datetime | None = None

    # --- the loop ---------------------------------------------------------------------------

    def _requests(self) -> Any:
        while True:
            line = self.reader.read_line()
            if line is None:
                return
            store = _fast_store(line)
            yield store if store is not None else parse_request(line)

    def run(self) -> None:
        session = self.session
        try:
            for request in self._requests():
                if type(request) is FastStore:
                    session.accept_store(request.binding, request.exists)
                    self._store(request)
                    continue
                for action in session.receive(request):
                    self._do(action)
            self.session.end()
        finally:
            if self.triggers is not None:
                self.triggers.close()
            if self.destination is not None:
                self.destination.close()

    def _do(self, action: machine.Action) -> None:
        match action:
            case machine.ApplyStore(store=store):
                self._store(store)
            case machine.StageLoad(load=load):
                table = self.tables[load.binding]
                if load.key_packed not in self.staged[load.binding]:
                    key = unpack(load.key_packed, "Load keyPacked")
                    self.staged[load.binding][load.key_packed] = table.key_line(key)
            case machine.EvaluateLoads():
                self._evaluate_loads()
            case machine.StartCommitAction(checkpoint=checkpoint):
                self._commit(checkpoint)
            case machine.SendAcknowledged(stores=stores, recovery=recovery):
                self._acknowledge(stores, recovery=recovery)
            case machine.OpenSession(open=open_):
                self._open(open_)
            case machine.Answer(request=request):
                self._answer(request)

    def _acknowledge(self, stores: int, *, recovery: bool) -> None:
        if self.triggers is not None and stores > 0:
            self.triggers.notify_commit(stores)  # returns at once: never delays acks
        if self.acks is not None:
            due = self.acks.acknowledge_at(stores, recovery=recovery, now=self.clock.wall())
            if due is not None:
                log.info("sync schedule: acknowledging at %s", due.isoformat())
                time.sleep(max(0.0, (due - self.clock.wall()).total_seconds()))
        self.writer.write(Acknowledged())
        if self.acks is not None:
            self.acks.sent(self.clock.wall())

    # --- unary requests ---------------------------------------------------------------------

    def _answer(self, request: Spec | Validate | Apply) -> None:
        if isinstance(request, Spec):
            self.writer.write(spec_response())
        elif isinstance(request, Validate):
            self.writer.write(validated(request, self.base_dir))
        else:
            self.writer.write(Applied(action_description=applied_description(request)))

    # --- the session ------------------------------------------------------------------------

    def _open(self, request: Open) -> None:
        spec = request.materialization
        endpoint = self.endpoint = parse_endpoint(spec.config)
        rng = request.range
        destination = open_destination(endpoint.destination, self.base_dir)
        if endpoint.destination.duckdb is not None and not rng.is_full:
            raise AfterloadError(
                f"materialization {spec.name}: a DuckDB destination has a single writer, so "
                f"it cannot take the split key range {rng.key_begin:08x}-{rng.key_end:08x}; "
                "run one shard"
            )
        if hasattr(destination, "exclusive"):
            destination.exclusive = False  # Flow's successor shard must take over: fences decide
        self.destination = destination
        self.tables = [
            FlowTable(
                i,
                b,
                parse_resource(b.resource_config, i),
                wide_ints=destination.wide_ints,
                stores_nul=destination.stores_nul,
                empty_names=destination.empty_names,
            )
            for i, b in enumerate(spec.bindings)
        ]
        self.staged = [{} for _ in self.tables]
        name = range_name(spec.name, rng.key_begin, rng.key_end)
        self.materializer = Materializer(destination, name, embedded_document=True)
        recovered = self.materializer.open()
        fence_ranges = getattr(destination, "fence_ranges", None)
        if fence_ranges is not None:
            # Before any other range's checkpoint is read: a zombie of a parent range commits
            # either before that read (and is inherited) or never.
            fenced = fence_ranges(spec.name + "@", partial(overlapping, spec.name, rng, name))
            if fenced:
                log.info("range %s fenced the overlapping ranges %s", name, ", ".join(fenced))
        checkpoint: Any = None
        if recovered.transactions > 0:
            checkpoint = recovered.checkpoint.driver
        else:
            committed = getattr(destination, "committed_checkpoints", None)
            if committed is not None:
                found = committed(spec.name + "@")
                parent = inherited(found, spec.name, rng.key_begin, rng.key_end)
                if parent is not None:
                    checkpoint = parent.driver
                    log.info("range %s starts from the checkpoint of the range covering it", name)
        if not isinstance(checkpoint, dict):
            # Nothing committed here nor in a covering range: Estuary's ExplicitZero, an empty
            # checkpoint, so the runtime starts from scratch. With none at all it would resume
            # from its recovery log and skip, unseen, what a new or emptied destination lacks.
            checkpoint = {}
        log.info("opened %s (fence %d)", name, recovered.fence)
        self.writer.write(Opened(runtime_checkpoint=checkpoint))
        self.txn = self._new_transaction()
        self._last_commit = recovered.committed_at
        self._start_trigger(spec.name, endpoint)
        self.acks = AckSchedule(SyncPolicy(endpoint.syncSchedule, spec.name))

    def _start_trigger(self, name: str, endpoint: EndpointConfig) -> None:
        """The dbt trigger: fires at start and after acknowledged data; shared on PostgreSQL."""
        settings = endpoint.dbt_job_trigger.trigger()
        if settings is None:
            return
        action: TriggerAction = DbtCloudAction(settings)
        pg = endpoint.destination.postgres
        if pg is not None:
            from afterload.destinations.postgres.connect import ConnectSettings

            connect = ConnectSettings.from_config(pg)
            action = SharedFires(
                action,
                lambda: connect.connect(autocommit=False),
                connect.schema,
                f"{name} {settings.account_id}/{settings.job_id}",
                lambda: self._last_commit,
            )
        self.triggers = TriggerThread([action])
        self.triggers.start(initial_fire=True)

    def _new_transaction(self) -> Transaction:
        txn = Transaction()
        hard = self.endpoint.hardDelete if self.endpoint is not None else False
        for t in self.tables:
            txn.changes[t.table] = BindingChanges(delta=t.delta, hard_delete=hard)
        return txn

    def _evaluate_loads(self) -> None:
        destination = self.destination
        assert destination is not None
        loader = getattr(destination, "load_documents", None)
        for table, staged in zip(self.tables, self.staged, strict=True):
            if not staged or loader is None:
                continue
            docs: list[str] = loader(table.table, table.shape, list(staged.values()))
            self.writer.write_lines([encode_loaded(table.index, doc) for doc in docs])
            staged.clear()
        self.writer.write(Flushed())

    def _store(self, store: Store | FastStore) -> None:
        if store.binding >= len(self.tables):
            raise ProtocolError(f"Store names binding {store.binding}, which Open does not have")
        table = self.tables[store.binding]
        key = unpack(store.key_packed, "Store keyPacked")
        values = unpack(store.values_packed, "Store valuesPacked")
        row = table.row(key, values, store.doc)
        self.txn.changes[table.table].add(store.key_packed, row, store.delete)
        self.txn.documents += 1

    def _commit(self, checkpoint: dict[str, Any]) -> None:
        assert self.materializer is not None
        shapes: dict[str, TableShape] = {t.table: t.shape for t in self.tables}
        self.materializer.commit(self.txn, Checkpoint(driver=checkpoint), shapes)
        if self.txn.stored:
            self._last_commit = self.materializer.last_commit_at
        self.txn = self._new_transaction()
        self.writer.write(StartedCommit())
        for action in self.session.commit_durable():
            self._do(action)


def run_connector(stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """Run until stdin ends; 0 on a clean end, 1 after logging one sentence."""
    try:
        Connector(stdin, stdout).run()
    except AfterloadError as exc:
        log.error("%s", exc)
        return 1
    return 0
