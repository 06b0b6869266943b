"""HRI policy (ROS-free): which frames count and on which clock (stamps), each person's resting face
(neutral baseline), and how expressions become robot commands (commands.yaml schema and the mapper)."""
