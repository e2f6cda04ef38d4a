"""Tests for utils/callbacks.py: registration, ordering, arguments and unknown hooks."""

import threading

import pytest

from utils.callbacks import HOOKS, Callbacks


def test_hooks_cover_yolov5_and_predict_export_events():
    for hook in ("on_pretrain_routine_start", "on_train_epoch_end", "on_val_image_end", "on_fit_epoch_end",
                 "on_model_save", "on_params_update", "teardown", "on_predict_start", "on_predict_end",
                 "on_export_start", "on_export_end"):
        assert hook in HOOKS
    assert set(Callbacks().get_registered_actions()) == set(HOOKS)


def test_run_calls_actions_in_order_with_arguments():
    cb, calls = Callbacks(), []
    cb.register_action("on_val_end", "first", lambda *a, **k: calls.append(("first", a, k)))
    cb.register_action("on_val_end", "second", lambda *a, **k: calls.append(("second", a, k)))
    cb.run("on_val_end", 1, 2, key="v")
    assert calls == [("first", (1, 2), {"key": "v"}), ("second", (1, 2), {"key": "v"})]
    assert [a["name"] for a in cb.get_registered_actions("on_val_end")] == ["first", "second"]
    cb.run("on_train_start")  # a hook without actions is a no-op


def test_threaded_run():
    cb, done = Callbacks(), threading.Event()
    cb.register_action("teardown", "t", lambda: done.set())
    cb.run("teardown", thread=True)
    assert done.wait(5)


def test_unknown_hook_and_bad_callback_raise_clear_errors():
    cb = Callbacks()
    with pytest.raises(KeyError, match="Unknown callback hook 'on_val_strat'"):
        cb.register_action("on_val_strat", "x", print)
    with pytest.raises(KeyError, match="valid hooks are: .*on_val_start"):
        cb.run("on_val_strat")
    with pytest.raises(KeyError, match="Unknown callback hook"):
        cb.get_registered_actions("nope")
    with pytest.raises(TypeError, match="not callable"):
        cb.register_action("on_val_start", "x", "not a function")
