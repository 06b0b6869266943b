"""fer_ros: facial expression recognition for human-robot interaction.

Sub-packages, each importing only from the ones before it:

- ``core``: the ROS-free pipeline (detection, preprocessing, tracking, smoothing, commands), the
  model spec, the configuration types and their choices; imports no other part of fer_ros.
- ``models``: PyTorch architectures, the checkpoint format and the ONNX export (torch only here).
- ``backends``: ONNX Runtime / TensorRT / PyTorch inference behind one small ABC.
- ``ros``: the node, its parameters, message conversions, the camera stand-in, child processes.
- ``evaluation``: bag reading and writing, offline and live (``ros``) evaluation, metrics, reports.
- ``tools``: thin console scripts over the above. ``examples``: a listener node.

rclpy is imported by ``ros``, ``evaluation.live``, ``tools.demo`` and ``examples``; the rest runs
without ROS. ``sample_frames`` makes demo and test frames from the packaged face photos.
"""
# The generated message module ``fer_ros.msg`` lives in the colcon install tree, while the
# hand-written modules may be imported from the source tree or a pip install. Extending
# ``__path__`` lets ``from fer_ros.msg import ...`` find the generated part wherever it is on
# sys.path, whichever copy of this package Python found first.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
