"""The service behind the routes: the inference lane, models, generation, logs, metrics, start-up."""
