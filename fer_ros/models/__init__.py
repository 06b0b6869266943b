"""PyTorch architectures (training, export and the torch backend only; needs torch).

Importing this package registers every architecture module with the registry.
"""
from fer_ros.models.registry import create_model, list_models, register_model  # noqa: F401
from fer_ros.models import mini_xception  # noqa: F401
from fer_ros.models import light_ntwrn  # noqa: F401
