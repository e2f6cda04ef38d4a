"""Event hooks: loggers and tools register actions for training, validation, prediction and export events."""

from __future__ import annotations

import threading
from typing import Callable

HOOKS = (
    # training
    "on_pretrain_routine_start",
    "on_pretrain_routine_end",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_train_epoch_end",
    # validation
    "on_val_start",
    "on_val_batch_start",
    "on_val_image_end",
    "on_val_batch_end",
    "on_val_end",
    # fit = train + val
    "on_fit_epoch_end",
    "on_model_save",
    "on_train_end",
    "on_params_update",
    "teardown",
    # prediction and export
    "on_predict_start",
    "on_predict_end",
    "on_export_start",
    "on_export_end",
)


class Callbacks:
    """A list of actions per hook name; run(hook) calls them in registration order."""

    def __init__(self):
        """Start with every known hook and no actions."""
        self._callbacks: dict[str, list[dict]] = {hook: [] for hook in HOOKS}
        self.stop_training = False  # an action may set this to end training early

    def _check(self, hook: str) -> None:
        if hook not in self._callbacks:
            raise KeyError(f"Unknown callback hook '{hook}'; valid hooks are: {', '.join(self._callbacks)}")

    def register_action(self, hook: str, name: str = "", callback: Callable | None = None) -> None:
        """Add callback under name to the actions run at hook."""
        self._check(hook)
        if not callable(callback):
            raise TypeError(f"Callback '{name}' for hook '{hook}' is not callable: {callback!r}")
        self._callbacks[hook].append({"name": name, "callback": callback})

    def get_registered_actions(self, hook: str | None = None) -> list[dict] | dict[str, list[dict]]:
        """The actions of one hook, or the whole hook -> actions mapping when hook is None."""
        if hook is None:
            return self._callbacks
        self._check(hook)
        return self._callbacks[hook]

    def run(self, hook: str, *args, thread: bool = False, **kwargs) -> None:
        """Call every action registered at hook with the given arguments, optionally each in a daemon thread."""
        self._check(hook)
        for action in self._callbacks[hook]:
            if thread:
                threading.Thread(target=action["callback"], args=args, kwargs=kwargs, daemon=True).start()
            else:
                action["callback"](*args, **kwargs)
