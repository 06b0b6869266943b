"""fer_ros: facial expression recognition for human-robot interaction.

Parts, each importing only from the ones listed before it (import-linter checks it: pyproject.toml):

- ``core``: the shared vocabulary: expression labels, result types, the model spec, setting metadata.
- ``util``, ``io``: generic helpers (stats, paths, child processes) | images and files (the one
  image-message decoder, image files, atomic writes, the debug overlay).
- ``perception``: face detectors (``perception.detectors``), crops and alignment, tracking, smoothing.
- ``hri``: HRI policy: the stamp policy, the neutral baseline, the command mapper and its schema.
- ``pipeline``: perception + HRI policy on a backend: ndarray in, faces and commands out.
- ``models``: PyTorch architectures, the checkpoint format and the ONNX export (torch only here).
- ``backends``: ONNX Runtime / TensorRT / PyTorch inference behind one small ABC; reading a model
  file's spec (``read_onnx_spec``); config -> parts.
- ``settings``, ``sample_frames``: the node's parameter table (ROS-free) | demo and test frames.
- ``ros``: the ROS adapters: node, lifecycle node, parameters on rclpy, conversions, ROS4HRI output,
  camera stand-in.
- ``evaluation``: bag reading and writing, offline and live (``ros``) evaluation, metrics, reports.
- ``tools``: thin console scripts over the above. ``examples``: a listener node.

rclpy is imported by ``ros``, ``evaluation.live``, ``tools.demo`` and ``examples``; the rest runs
without ROS.
"""
# The generated ``fer_ros.msg`` / ``fer_ros.srv`` live in the colcon install tree, while the hand-written
# modules may be imported from the checkout (make setup's editable install; `python -m ...` in the repository)
# or a pip install, which come first on sys.path. A regular package stops at its first folder, and this one
# cannot be a namespace package (rosidl installs an __init__.py); extending ``__path__`` (the standard
# library's means for a package spread over several sys.path entries) lets ``from fer_ros.msg import ...``
# find the generated part wherever it is, whichever copy of this package Python found first. In a ROS
# install alone both are in one folder and this changes nothing.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
