"""A local dbt Cloud API v2 emulator (the ``emulator`` extra: starlette and uvicorn).

It serves the endpoints afterload uses with the spec's envelope, status codes and error bodies,
moves runs through their states on an injectable clock, and injects the failures real networks
produce, so a client's retries can be checked for duplicate runs.
"""

from afterload.triggers.dbt_cloud.emulator.app import DbtCloudEmulator
from afterload.triggers.dbt_cloud.emulator.server import EmulatorServer, serve
from afterload.triggers.dbt_cloud.emulator.settings import EmulatorSettings, Fault

__all__ = ["DbtCloudEmulator", "EmulatorServer", "EmulatorSettings", "Fault", "serve"]
