"""Run folders, CSV logs and run.json: everything the figures read."""
