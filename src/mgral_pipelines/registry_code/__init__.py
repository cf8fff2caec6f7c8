"""MLflow "models from code" entry files: each names the pyfunc class of one registered model.

MLflow copies the file into the logged model and runs it at load time (no pickled object);
the model's settings come from its `model_config` (see `mgral_pipelines.registry`).
"""
