"""repro: reproduction suite for AutoLR, automatic learning-rate tuning while training runs."""

__version__ = "0.1.0"
