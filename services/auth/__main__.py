"""python -m services.auth: settings from the environment, then run until SIGTERM."""

from services.auth.app import MIGRATIONS, wire
from services.auth.settings import Settings
from services.chassis.runner import main

main(Settings.from_env, MIGRATIONS, wire)
