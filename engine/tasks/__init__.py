"""Each task's hooks into the engine: <task>.py trains, <task>_val.py validates, <task>_predict.py predicts."""
