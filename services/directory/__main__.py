"""python -m services.directory: settings from the environment, then run until SIGTERM."""

from services.chassis.runner import main
from services.directory.app import MIGRATIONS, wire
from services.directory.settings import Settings

main(Settings.from_env, MIGRATIONS, wire)
