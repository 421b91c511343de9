"""corft_ros: an ament_python package (colcon on ROS 2 machines) that also installs with pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "corft_ros"
NODES = ["sim_arm", "camera", "policy", "executor", "episode_logger", "teleop", "trainer", "benchmark"]


def _data_files() -> list[tuple[str, list[str]]]:
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ]
    for model_dir in sorted(glob("models/*/")):
        name = model_dir.rstrip("/").split("/")[-1]
        files.append((f"share/{PACKAGE}/models/{name}", [f for f in glob(f"{model_dir}*") if "." in f]))
    return files


setup(
    name=PACKAGE,
    version="0.2.0",
    packages=find_packages(exclude=["test"]),
    python_requires=">=3.10",  # ROS 2 Humble (3.10), Jazzy and Kilted (3.12); make test-py310 checks 3.10
    data_files=_data_files(),
    install_requires=["setuptools"],
    extras_require={"gpu": ["onnxruntime-gpu==1.32.0"]},
    zip_safe=False,
    maintainer="corft_ros engineers",
    maintainer_email="corft-ros@example.org",
    description="Deploy VLA action-chunk policies on ROS 2 arms and improve them with CO-RFT offline RL.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{node} = {PACKAGE}.nodes.{node}:main" for node in NODES]
        + ["corft-ros = corft_ros.cli:main"],
    },
)
