"""A tiny connector for the protocol layer's own tests: a JSON file as the destination.

It exists so that codec, machine, tuples and the stand-in run together in a real child
process (and can be SIGKILLed) before the real destinations are wired in phase 2. The file
holds rows, the checkpoint and the fence, replaced atomically at each commit, which is the
same "data + checkpoint + fence in one destination transaction" rule the SQL shell follows.

    python -m tests.flow.file_connector STATE_FILE
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from afterload.flow import logs, machine
from afterload.flow.codec import RequestReader, ResponseWriter
from afterload.flow.errors import ProtocolError
from afterload.flow.response import Acknowledged, Flushed, Opened, StartedCommit, encode_loaded
from afterload.flow.spec import spec_response
from afterload.flow.tuples import unpack


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    return {"rows": {}, "checkpoint": None, "fence": 0}


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


# One loop on purpose: it shows the whole shell on one screen.
def run(path: Path) -> int:  # noqa: C901
    log = logs.configure()
    reader, writer, session = RequestReader(), ResponseWriter(), machine.Session()
    state = _load(path)
    fence = 0
    staged: list[tuple[int, str]] = []
    pending: dict[str, Any] = {}
    try:
        for request in reader:
            for action in session.receive(request):
                match action:
                    case machine.Answer():
                        writer.write(spec_response())
                    case machine.OpenSession():
                        state = _load(path)
                        fence = state["fence"] = state["fence"] + 1
                        _save(path, state)
                        writer.write(Opened(runtime_checkpoint=state["checkpoint"]))
                        log.info("opened", extra={"fence": fence})
                    case machine.StageLoad(load=load):
                        staged.append((load.binding, json.dumps(unpack(load.key_packed))))
                    case machine.EvaluateLoads():
                        rows = _load(path)["rows"]
                        for binding, key in staged:
                            doc = rows.get(f"{binding}:{key}")
                            if doc is not None:
                                writer.write_line(encode_loaded(binding, json.dumps(doc)))
                        staged.clear()
                        writer.write(Flushed())
                    case machine.ApplyStore(store=store):
                        key = json.dumps(unpack(store.key_packed, "Store keyPacked"))
                        unpack(store.values_packed, "Store valuesPacked")
                        pending[f"{store.binding}:{key}"] = None if store.delete else store.doc
                    case machine.StartCommitAction(checkpoint=checkpoint):
                        current = _load(path)
                        if current["fence"] != fence:
                            raise ProtocolError("this instance was fenced off by another")
                        for k, doc in pending.items():
                            if doc is None:
                                current["rows"].pop(k, None)
                            else:
                                current["rows"][k] = doc
                        current["checkpoint"] = checkpoint
                        _save(path, current)
                        pending.clear()
                        writer.write(StartedCommit())
                        for after in session.commit_durable():
                            assert isinstance(after, machine.SendAcknowledged)
                            writer.write(Acknowledged())
                    case machine.SendAcknowledged():
                        writer.write(Acknowledged())
        session.end()
    except ProtocolError as err:
        print(json.dumps({"level": "error", "message": str(err)}), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
