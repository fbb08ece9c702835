"""The config file: :mod:`.load` reads it, :mod:`.model` is its root, :mod:`.problems` words
what is wrong. The blocks' models live beside their owners (a destination, a trigger kind,
the NDJSON driver), so this package sits above them all and nothing below imports it.
"""

from afterload.config.load import LoadedConfig, load_config, parse_config
from afterload.config.model import Config, json_schema

__all__ = ["Config", "LoadedConfig", "json_schema", "load_config", "parse_config"]
