"""Generic helpers with no fer_ros knowledge beyond paths: statistics, install/checkout paths, the
latest-frame slot and the child-process routine (start/wait/stop the node and the camera)."""
