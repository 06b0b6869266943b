"""The node's settings, ROS-free: the parameter table (declares, documents, validates and maps every
parameter to the configs of perception, HRI policy and backends) and the checks of params files and
overrides given at start. The ROS node (``fer_ros.ros``), offline evaluation and the tests read them."""
