"""``opsmith serve``: the HTTP API, Prometheus metrics and the web UI, over one warm backend.

:func:`opsmith.serve.app.create_app` builds the ASGI app (FastAPI); ``opsmith serve`` runs it
with uvicorn. Importing this package imports nothing heavy.
"""
