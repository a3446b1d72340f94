"""WSGI entry point: gunicorn -c python:autodealgenie.gunicorn_conf autodealgenie.wsgi:app"""

from .app import create_app

app = create_app()
