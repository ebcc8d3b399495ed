"""python -m services.directory: settings from the environment, then run until SIGTERM."""

from services.directory.app import MIGRATIONS, wire
from services.directory.settings import Settings
from services.chassis.runner import main

main(Settings.from_env, MIGRATIONS, wire)
