"""Full training-state snapshots that restore bit for bit, into buffers allocated once.

A search restores the same state once per candidate LR, so the snapshot copies into tensors it
allocated at the first capture and reuses them afterwards: its memory is one copy of the model's
parameters and buffers plus the optimizer state, and does not grow from search to search.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import torch


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _copy_into(store: dict, key, value):
    """Copy `value` into `store[key]`, reusing the stored tensor when shape and dtype match."""
    if isinstance(value, torch.Tensor):
        held = store.get(key)
        if isinstance(held, torch.Tensor) and held.shape == value.shape and held.dtype == value.dtype \
                and held.device == value.device:
            held.copy_(value)
        else:
            store[key] = value.detach().clone()
    else:
        store[key] = copy.deepcopy(value)


class TrainingSnapshot:
    """Parameters, buffers, optimizer state, optimizer hyperparameters and RNG states.

    `capture()` records the current state and `restore()` puts it back exactly. Optimizer state
    entries created after the capture (for example a momentum buffer made by the first step) are
    removed on restore, so the optimizer behaves as if the steps in between never happened.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.model = model
        self.optimizer = optimizer
        self._tensors: dict[str, torch.Tensor] = {}
        self._optimizer_state: dict[int, dict] = {}
        self._param_groups: list[dict] = []
        self._rng: dict | None = None

    def capture(self) -> None:
        with torch.no_grad():
            for name, tensor in self.model.state_dict(keep_vars=True).items():
                _copy_into(self._tensors, name, tensor.detach())

            params = self._optimizer_params()
            live = set()
            for index, param in enumerate(params):
                state = self.optimizer.state.get(param)
                if not state:
                    continue
                live.add(index)
                stored = self._optimizer_state.setdefault(index, {})
                for key in list(stored):
                    if key not in state:
                        del stored[key]
                for key, value in state.items():
                    _copy_into(stored, key, value)
            for index in list(self._optimizer_state):
                if index not in live:
                    del self._optimizer_state[index]

        self._param_groups = [
            {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            for group in self.optimizer.param_groups
        ]
        self._rng = _rng_state()

    def restore(self) -> None:
        if self._rng is None:
            raise RuntimeError("TrainingSnapshot.restore() called before capture()")

        with torch.no_grad():
            for name, tensor in self.model.state_dict(keep_vars=True).items():
                tensor.copy_(self._tensors[name])

            for index, param in enumerate(self._optimizer_params()):
                stored = self._optimizer_state.get(index)
                if stored is None:
                    self.optimizer.state.pop(param, None)
                    continue
                state = self.optimizer.state[param]
                for key in list(state):
                    if key not in stored:
                        del state[key]
                for key, value in stored.items():
                    current = state.get(key)
                    if isinstance(value, torch.Tensor) and isinstance(current, torch.Tensor) \
                            and current.shape == value.shape and current.dtype == value.dtype:
                        current.copy_(value)
                    elif isinstance(value, torch.Tensor):
                        state[key] = value.clone()
                    else:
                        state[key] = copy.deepcopy(value)

        for group, stored in zip(self.optimizer.param_groups, self._param_groups):
            group.update(copy.deepcopy(stored))
        _set_rng_state(self._rng)

    def nbytes(self) -> int:
        """Bytes held in snapshot tensors (model and optimizer state)."""
        total = sum(t.numel() * t.element_size() for t in self._tensors.values())
        for state in self._optimizer_state.values():
            total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
        return total

    def _optimizer_params(self) -> list[torch.nn.Parameter]:
        return [param for group in self.optimizer.param_groups for param in group["params"]]


def training_state_nbytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the live model state (parameters and buffers) plus optimizer state tensors."""
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    for state in optimizer.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
    return total
