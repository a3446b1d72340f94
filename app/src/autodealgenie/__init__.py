"""AutoDealGenie backend (Flask). The application factory is autodealgenie.app.create_app.

Kept free of imports: gunicorn's master imports autodealgenie.gunicorn_conf, and must not create
metric values (files named after the master's pid) before forking workers.
"""
