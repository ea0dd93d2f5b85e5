"""Tests with real processes: manage.py runs, signals, kills, servers. Marker ``processes``."""
