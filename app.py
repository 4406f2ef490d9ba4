"""Entry point found by ``flask`` and gunicorn (``gunicorn 'app:app'``)."""

import sys

from config import ConfigError
from outreach import create_app

try:
    app = create_app()
except ConfigError as error:
    # One line for the operator, exit code 1: the message says what to set and how.
    sys.exit(f"Error: {error}")
