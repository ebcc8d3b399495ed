"""python -m services.compliance: settings from the environment, then run until SIGTERM."""

from services.chassis.runner import main
from services.compliance.app import MIGRATIONS, wire
from services.compliance.settings import Settings

main(Settings.from_env, MIGRATIONS, wire)
