"""``afterload spec``: the JSON Schema of the whole config."""

from __future__ import annotations

import json
import sys

from afterload.cli.app import app


@app.command()
def spec() -> None:
    """Print the JSON Schema of the config (defaults, enums, descriptions, secrets)."""
    from afterload.config.model import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
