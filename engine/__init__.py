"""The engine: one Trainer, Validator, Predictor and Exporter; each task supplies only its hooks."""
