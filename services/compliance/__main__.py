"""python -m services.compliance: settings from the environment, then run until SIGTERM."""

from services.compliance.app import MIGRATIONS, wire
from services.compliance.settings import Settings
from services.chassis.runner import main

main(Settings.from_env, MIGRATIONS, wire)
