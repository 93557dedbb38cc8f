"""Data sets for every setting: real loaders, offline CPU-scale stand-ins and clear errors."""
