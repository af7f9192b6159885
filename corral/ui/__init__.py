"""The web UI's static files (corral/ui/static/), served by corral/api/ui.py at /ui/ on the HTTPS listener."""
import os

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
