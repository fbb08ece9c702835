"""The webhooks' half of ``status``: what each still owes, from the committed checkpoint.

A webhook keeps no ledger rows (those are dbt job decisions); what it owes is its pending
windows, committed beside the data (``webhook:NAME`` in the checkpoint's triggers), dropped
once delivered. So a webhook with no entry has nothing left to deliver.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from rich.console import Console

from afterload.config.load import LoadedConfig
from afterload.destinations.base import Recovered
from afterload.triggers.webhook.schedule import PendingState

PREFIX = "webhook:"
"""The webhooks' keys in the checkpoint's trigger states (``webhook/runner.py``'s state_key)."""


def webhook_status_json(loaded: LoadedConfig, info: Recovered | None) -> list[dict[str, Any]]:
    """Per webhook of the config: whether commits wait for delivery, and which."""
    block = loaded.config.triggers
    if block is None:
        return []
    stored = info.checkpoint.triggers if info is not None else {}
    out = []
    for name in block.named():
        key = PREFIX + name
        windows = []
        try:
            state = PendingState.model_validate(stored.get(key) or {})
        except ValidationError:
            state = PendingState()
        for window in (state.sealed, state.open):
            if window is not None:
                windows.append(
                    {
                        "first_transaction": window.first,
                        "last_transaction": window.last,
                        "since": window.opened_at.isoformat(timespec="seconds"),
                        "tables": list(window.collections),
                    }
                )
        out.append({"trigger": key, "kind": "webhook", "pending": bool(windows), "owed": windows})
    return out


def print_webhook_status(items: list[dict[str, Any]], console: Console) -> None:
    for item in items:
        if not item["owed"]:
            text = "nothing left to deliver"
        else:
            first, last = item["owed"][0], item["owed"][-1]
            low, high = first["first_transaction"], last["last_transaction"]
            span = f"transaction {low}" if low == high else f"transactions {low}–{high}"
            tables = sorted({t for w in item["owed"] for t in w["tables"]})
            text = (
                f"{span} ({', '.join(tables)}) committed since {first['since']}, not yet delivered"
            )
        console.print(f"{item['trigger']}: {text}", highlight=False, soft_wrap=True)
