"""The colcon (ament_python) package of the ROS 2 node: an executable for `ros2 run` and the
launch file. The node's code is the lgcnet-deploy package, installed with pip beforehand
(docs/ros2.md, "In a colcon workspace")."""

from setuptools import setup

PACKAGE = "lgcnet_segmentation"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", ["launch/segmentation.launch.py"]),
    ],
    install_requires=["setuptools", "lgcnet-deploy"],
    zip_safe=True,
    entry_points={"console_scripts": [
        "segmentation_node = lgcnet_deploy.apps.ros2_node:console"]},
)
