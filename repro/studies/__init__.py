"""The studies that check AutoLR's assumptions on a given model and data: LR range test,
quadratic-fit study and superbatch noise study (`repro range-test`, `repro fit-study`,
`repro noise-study`)."""

from .noise_study import superbatch_from_study

__all__ = ["superbatch_from_study"]
