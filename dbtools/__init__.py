"""Database machinery every app shares: batches, locks, error meanings, stop requests.

A plain package (no models, not an installed app); it imports nothing of this project.
"""
