"""fer_ros: facial expression recognition for human-robot interaction.

Sub-packages: ``core`` (ROS-free pipeline), ``models`` (PyTorch architectures), ``backends``
(ONNX Runtime / TensorRT / PyTorch inference), ``ros`` (the only rclpy code), ``tools`` (CLIs).
"""
# The generated message module ``fer_ros.msg`` lives in the colcon install tree, while the
# hand-written modules may be imported from the source tree or a pip install. Extending
# ``__path__`` lets ``from fer_ros.msg import ...`` find the generated part wherever it is on
# sys.path, whichever copy of this package Python found first.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
