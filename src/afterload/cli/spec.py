"""``afterload spec``: the JSON Schema of the whole config."""

from __future__ import annotations

import json
import sys

from afterload.cli.app import app
from afterload.config.model import json_schema


@app.command()
def spec() -> None:
    """Print the JSON Schema of the config (defaults, enums, descriptions, secrets)."""
    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
