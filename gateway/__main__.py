"""python -m gateway: settings from the environment, then serve until SIGTERM."""

import asyncio

from gateway.app import serve
from gateway.settings import Settings
from services.chassis import logs

settings = Settings.from_env()
logs.configure("gateway", settings.log_level)
asyncio.run(serve(settings))
