"""The model server: serve.py's REST API (v7.0's request and records), request batching, limits and the web page."""
