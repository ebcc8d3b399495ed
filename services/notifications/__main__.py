"""python -m services.notifications: settings from the environment, then run until SIGTERM."""

from services.chassis.runner import main
from services.notifications.app import MIGRATIONS, wire
from services.notifications.settings import Settings

main(Settings.from_env, MIGRATIONS, wire)
