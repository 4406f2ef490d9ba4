"""Entry point found by ``flask`` and gunicorn (``gunicorn 'app:app'``)."""

from outreach import create_app

app = create_app()
