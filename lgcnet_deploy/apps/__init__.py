"""Stage 4, applications on the runtime: the ROS 2 node (`lgcnet ros2`, the `[ros2]` extra)."""
