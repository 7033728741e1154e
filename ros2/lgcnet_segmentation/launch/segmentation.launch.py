"""Launch the LGCNet segmentation node: `ros2 launch lgcnet_segmentation
segmentation.launch.py image:=/camera/image_raw model:=/opt/models/lgcnet.onnx`."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# launch argument -> (default, what it sets)
ARGUMENTS = {
    "image": ("image", "the input topic (sensor_msgs/Image)"),
    "model": ("lgcnet-camvid", "model file (.onnx, .pt, .engine) or shipped model name"),
    "device": ("cpu", "cpu, cuda[:N] or tensorrt"),
    "resize": ("", "stretch or letterbox for frames of another aspect than the model's"),
    "namespace": ("", "namespace of the node and its topics"),
}


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in ARGUMENTS.items()]
    node = Node(
        package="lgcnet_segmentation", executable="segmentation_node",
        name="lgcnet_segmentation", namespace=LaunchConfiguration("namespace"),
        parameters=[{name: LaunchConfiguration(name) for name in ("model", "device", "resize")}],
        remappings=[("image", LaunchConfiguration("image"))], output="screen")
    return LaunchDescription([*arguments, node])
