"""Evaluation of recorded camera data (rosbags) without ROS: bag reading/writing, labels, metrics,
plots and reports, plus the live mode that replays a bag into the real node.

Only ``live`` imports rclpy (lazily, when live mode runs); everything else is plain Python on top of
``rosbags`` (pure Python, reads rosbag2 sqlite3 and mcap and ROS 1 bags) and matplotlib.
"""
