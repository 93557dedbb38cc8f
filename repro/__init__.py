"""repro: reproduction suite for AutoLR, automatic learning-rate tuning while training runs."""

__version__ = "0.1.0"


def _register_config_resolvers() -> None:
    """Register `${project_root:}` on import, so launcher worker processes (joblib, submitit) resolve it too."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("project_root"):
        from .cli import project_root

        OmegaConf.register_new_resolver("project_root", lambda: str(project_root()))


_register_config_resolvers()
