"""python -m services.tickets: settings from the environment, then run until SIGTERM."""

from services.chassis.runner import main
from services.tickets.app import MIGRATIONS, wire
from services.tickets.settings import Settings

main(Settings.from_env, MIGRATIONS, wire)
