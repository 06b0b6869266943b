"""Perception (ROS-free): face detectors, face crops and alignment, the tracker and its temporal
smoothing of expression probabilities."""
