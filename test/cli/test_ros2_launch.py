"""`colcon build` + `ros2 launch corft_ros <graph>.launch.py`, for real: the upstream launch / launch_ros / ros2cli
(jazzy branch, from ../shared, installed by test/ros2_tools.py), colcon from PyPI, and this interpreter's rclpy
(Kilted's 9.1.2 in .venv, Jazzy's 7.1.6 in .venv-jazzy: `make test` runs this file in both).

The package is copied into a fresh workspace and colcon-built; each test sources install/setup.bash and runs
`ros2 launch` (or `ros2 run`) in its own DDS domain, in a new process group, as a terminal would: Ctrl-C is SIGINT to
the whole group (launch and every node get it, then launch sends its own). The graph is checked from this process
with rclpy's graph API and real subscriptions, never with sleeps; every node process must start, do its job, and
end "cleanly" (launch's own words for exit code 0), with no process left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test/: ros2_tools, ros_harness, domains
import domains  # noqa: E402
import ros2_tools  # noqa: E402
from processes import alive, children  # noqa: E402

from corft_ros.core.paths import share_dir  # noqa: E402
from corft_ros.core.robot import load_robot_config  # noqa: E402

ROOT = share_dir()
RCLPY = version("ros-rclpy") if ros2_tools.missing() == "" else ""
DISTRO = {"9": "kilted", "7": "jazzy"}.get(RCLPY.split(".")[0], f"rclpy {RCLPY}")
START_S = 90.0  # generous deadlines: a 2-core CI machine with a CPU hog beside it
pytestmark = pytest.mark.skipif(bool(ros2_tools.missing()), reason=ros2_tools.missing() or "available")

# what the package copy into the workspace leaves out: at the top, venvs, build outputs and results; anywhere, caches
TOP_IGNORED = {".git", ".ros2-tools", "build", "install", "log", "docs", "episodes", "bench", "runs", "cache", "out",
               ".pytest_cache", ".ruff_cache", ".hypothesis"}
ANY_IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info")


def _ignored(folder: str, names: list[str]) -> set[str]:
    top = {n for n in names if n in TOP_IGNORED or n.startswith(".venv")} if Path(folder) == ROOT else set()
    return top | set(ANY_IGNORED(folder, names))
DEPLOY = ["sim_arm", "policy", "executor", "episode_logger"]  # the deploy graph's processes in sim
_DOMAINS = [domains.own(k) for k in range(7, domains.OWN + 1)]  # one per launch, none shared (test/domains.py)


@dataclass
class Workspace:
    root: Path
    tools: Path
    build_s: float


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    tools = ros2_tools.build()
    root = tmp_path_factory.mktemp(f"colcon_ws_{DISTRO}")
    shutil.copytree(ROOT, root / "src" / "corft_ros", ignore=_ignored)
    env = {**os.environ, "PYTHONPATH": str(tools / "colcon")}
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, str(tools / "colcon" / "bin" / "colcon"), "build", "--packages-select",
                             "corft_ros"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    build_s = time.monotonic() - t0
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    install = root / "install" / "corft_ros"
    for path in ("lib/corft_ros/executor", "lib/corft_ros/episode_logger", "share/corft_ros/launch/deploy.launch.py",
                 "share/corft_ros/config/deploy.yaml", "share/corft_ros/models/default",
                 "share/ament_index/resource_index/packages/corft_ros"):
        assert (install / path).exists(), f"colcon build did not install {path}"
    print(f"\ncolcon build ({DISTRO}, rclpy {RCLPY}): {build_s:.1f} s")
    return Workspace(root, tools, build_s)


# Before bash: a process started in the background by a non-interactive shell has SIGINT ignored, and an ignored
# signal stays ignored through exec (launch would then ignore Ctrl-C): put the default back first.
_EXEC_WITH_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                     "os.execvp(sys.argv[1], sys.argv[1:])")
_SOURCE_AND_EXEC = 'source "$1/install/setup.bash" && shift && exec "$@"'


class Ros2:
    """One `ros2 <verb> corft_ros ...` process (bash: source install/setup.bash, exec ros2) in its own process
    group and DDS domain; its output is collected line by line."""

    # launch names each process <executable>-<n>
    STARTED = re.compile(r"\[INFO\] \[(\S+-\d+)\]: process started with pid \[(\d+)\]")
    CLEAN = re.compile(r"\[INFO\] \[(\S+-\d+)\]: process has finished cleanly \[pid (\d+)\]")
    DIED = re.compile(r"\[ERROR\] \[(\S+-\d+)\]: process has died \[pid (\d+), exit code (-?\d+)")

    def __init__(self, ws: Workspace, verb: str, *args: str, cwd: Path, domain: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")}
        env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(ws.tools / "ros2"), RCUTILS_COLORIZED_OUTPUT="0")
        self.command, self.domain = ["ros2", verb, "corft_ros", *args], domain
        cmd = [sys.executable, "-c", _EXEC_WITH_SIGINT, "bash", "-c", _SOURCE_AND_EXEC, "launcher", str(ws.root),
               sys.executable, str(ws.tools / "ros2" / "bin" / "ros2"), verb, "corft_ros", *args]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = START_S) -> re.Match:
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    found = regex.search(line)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"'{pattern}' not in the output of {' '.join(self.command)} within "
                                         f"{timeout:g} s:\n{self.output[-4000:]}")
                self._cond.wait(min(remaining, 0.5))

    def started(self) -> dict[str, int]:
        """Process label (executable-n) -> pid."""
        return {m[1]: int(m[2]) for m in self.STARTED.finditer(self.output)}

    def clean(self) -> dict[str, int]:
        return {m[1]: int(m[2]) for m in self.CLEAN.finditer(self.output)}

    def executables(self) -> list[str]:
        return sorted(label.rsplit("-", 1)[0] for label in self.started())

    def died(self) -> list[str]:
        return [m[0] for m in self.DIED.finditer(self.output)]

    def ctrl_c(self) -> None:
        """What Ctrl-C in a terminal does: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{' '.join(self.command)} did not end within {timeout:g} s:\n"
                                 f"{self.output[-4000:]}") from None
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """Cleanup after a failed test: nothing of it may outlive the test. Its processes keep the process group
        (the launcher's pid) even when orphaned."""
        pids = list(self.started().values())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def assert_no_orphans(pids: dict[str, int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids.values()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {[n for n, p in pids.items() if alive(p)]}")
        time.sleep(0.05)


@pytest.fixture
def graph(workspace, tmp_path):
    """Start `ros2 launch`/`ros2 run` processes (each in a DDS domain of its own), with a probe node in that domain;
    whatever is still running at the end of the test is killed."""
    from ros_harness import RosHarness

    started: list[tuple[Ros2, RosHarness]] = []

    def start(verb: str, *args: str, cwd: Path | None = None) -> tuple[Ros2, RosHarness]:
        domain = _DOMAINS.pop()
        cwd = cwd or tmp_path
        cwd.mkdir(parents=True, exist_ok=True)
        probe = RosHarness(domain_id=domain)
        launched = Ros2(workspace, verb, *args, cwd=cwd, domain=domain)
        started.append((launched, probe))
        return launched, probe

    yield start
    for launched, probe in started:
        launched.kill()
        probe.shutdown()
        print(f"--- {' '.join(launched.command)} (domain {launched.domain}):\n{launched.output[-6000:]}")


def wait_nodes(launched: Ros2, probe, names: set[str], namespace: str = "/", timeout: float = START_S) -> None:
    """Every node in `names` is in the ROS graph (rclpy's graph API, from the probe)."""
    deadline = time.monotonic() + timeout
    while True:
        up = {n for n, ns in probe.probe.get_node_names_and_namespaces() if ns == namespace}
        if names <= up:
            return
        if time.monotonic() > deadline or launched.proc.poll() is not None:
            raise AssertionError(f"nodes not up in {namespace} within {timeout:g} s: {sorted(names - up)}\n"
                                 f"{launched.output[-4000:]}")
        time.sleep(0.05)


def stop_and_check(launched: Ros2, executables: list[str]) -> None:
    """Every process of the graph started (the `executables`, one per node); Ctrl-C: exit 0, every one 'finished
    cleanly', none left running."""
    pids = launched.started()
    assert launched.executables() == sorted(executables), (pids, launched.output[-3000:])
    launched.ctrl_c()
    assert launched.wait() == 0, launched.output[-4000:]
    assert not launched.died(), launched.died()
    assert set(launched.clean()) == set(pids), (launched.clean(), launched.output[-4000:])
    assert_no_orphans(pids)


def sim_seconds(clock_log) -> float:
    last = clock_log.last
    return 0.0 if last is None else last.clock.sec + last.clock.nanosec * 1e-9


def commands_per_sim_second(probe, commands, clock, seconds: float = 1.0) -> float:
    """Commands received while the sim clock advanced `seconds` (the executor's loop runs on sim time)."""
    clock.wait(lambda m: len(m) > 0, START_S)
    t0, n0 = sim_seconds(clock), len(commands.messages)
    clock.wait(lambda m: sim_seconds(clock) >= t0 + seconds, START_S)
    return (len(commands.messages) - n0) / (sim_seconds(clock) - t0)


def test_sim_launch_runs_the_arm_and_stops_on_ctrl_c(graph):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState

    launched, probe = graph("launch", "sim.launch.py")
    states = probe.subscribe_sensor(JointState, "/joint_states")
    clock = probe.subscribe_sensor(Clock, "/clock")
    wait_nodes(launched, probe, {"sim_arm"})
    states.wait(lambda m: len(m) >= 10, START_S)
    clock.wait(lambda m: len(m) >= 10, START_S)
    stop_and_check(launched, ["sim_arm"])


def test_deploy_from_an_empty_folder_runs_all_four_nodes_and_records_an_episode(graph, tmp_path):
    """The defect: from a folder without ./episodes the logger exited with code 2 and the rest ran on."""
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger
    from trajectory_msgs.msg import JointTrajectory

    from corft_ros.core.episodes.reader import EpisodeBag, list_episodes
    from corft_ros.nodes.qos import RECORDED, RELIABLE

    empty = tmp_path / "empty"
    launched, probe = graph("launch", "deploy.launch.py", cwd=empty)
    chunks = probe.subscribe(JointTrajectory, "/corft/action_chunk", RELIABLE)
    commands = probe.subscribe(Float64MultiArray, "/forward_position_controller/commands", RECORDED)
    clock = probe.subscribe_sensor(Clock, "/clock")
    wait_nodes(launched, probe, set(DEPLOY))
    chunks.wait(lambda m: len(m) > 0, START_S)
    first_chunk_s = chunks.stamps[0] - launched.t0
    rate = commands_per_sim_second(probe, commands, clock)
    control_hz = load_robot_config().control_rate_hz
    print(f"\ndeploy ({DISTRO}): first chunk {first_chunk_s:.2f} s after ros2 launch started; "
          f"{rate:.1f} commands per sim second (control rate {control_hz:g} Hz)")
    assert rate >= 0.5 * control_hz

    assert probe.call(Trigger, "/corft/episode/start", Trigger.Request(), timeout=30).success
    t0 = sim_seconds(clock)
    clock.wait(lambda m: sim_seconds(clock) >= t0 + 2.0, START_S)
    assert probe.call(Trigger, "/corft/episode/stop", Trigger.Request(), timeout=30).success
    assert probe.call(SetBool, "/corft/episode/label", SetBool.Request(data=False), timeout=30).success
    stop_and_check(launched, DEPLOY)

    (info,) = list_episodes(empty / "episodes")
    assert info.status == "stopped" and info.success is False and info.dropped_total == 0, info
    with EpisodeBag(info.path, require_intact=True) as bag:
        topics = {m.topic for m in bag.messages()}
    assert {"/joint_states", "/corft/action_chunk", "/camera/front/image_raw", "/camera/wrist/image_raw",
            "/forward_position_controller/commands"} <= topics, topics


def test_deploy_jtc_open_loop_in_a_namespace_and_sigterm_to_ros2_launch(graph, tmp_path):
    """output:=jtc mode:=open_loop realtime_factor:=0 namespace:=left: every node in /left, trajectories to the
    namespaced joint_trajectory_controller topic. Then SIGTERM to `ros2 launch` alone (as `kill <pid>` or a service
    manager sends it): upstream launch exits without stopping its nodes; ours end with it (SIGTERM from the kernel
    when their launcher ends) and close cleanly: the open episode's bag is finished, not left to repair. (The
    executor's final hold on a stop: test_executor_ros2_control.)"""
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from corft_ros.core.episodes.reader import list_episodes
    from corft_ros.nodes.qos import RECORDED, RELIABLE

    launched, probe = graph("launch", "deploy.launch.py", "output:=jtc", "mode:=open_loop", "realtime_factor:=0",
                            "namespace:=left", f"output_dir:={tmp_path / 'eps'}")
    chunks = probe.subscribe(JointTrajectory, "/left/corft/action_chunk", RELIABLE)
    plans = probe.subscribe(JointTrajectory, "/left/arm_controller/joint_trajectory", RECORDED)
    wait_nodes(launched, probe, set(DEPLOY), namespace="/left")
    chunks.wait(lambda m: len(m) >= 3, START_S)
    plans.wait(lambda m: any(len(p.points) > 1 for p in m), START_S)  # tracking a chunk: multi-point plans
    assert set(plans.messages[-1].joint_names) <= set(load_robot_config().joint_names)
    assert probe.call(Trigger, "/left/corft/episode/start", Trigger.Request(), timeout=30).success
    assert launched.executables() == sorted(DEPLOY)
    pids = launched.started()
    os.kill(launched.proc.pid, signal.SIGTERM)
    launched.wait()
    assert_no_orphans(pids)
    (info,) = list_episodes(tmp_path / "eps")
    assert info.status == "stopped" and not info.needs_repair and info.dropped_total == 0, info


def test_real_arm_graph_without_hardware_and_a_node_that_cannot_start(graph, tmp_path):
    """sim:=false on a machine with no camera and no controller starts every process (the cameras retry); a node that
    cannot start (the policy: no such model) stops the whole launch with its reason, exit 1, instead of leaving a
    graph that half runs. The other nodes finish cleanly."""
    launched, probe = graph("launch", "deploy.launch.py", "sim:=false", f"model:={tmp_path / 'no-such-model'}")
    assert launched.wait(timeout=START_S) == 1, launched.output[-4000:]
    out = launched.output
    assert "no-such-model: model directory not found" in out
    assert "policy exited (code 2) and the graph cannot run without it" in out
    pids = launched.started()
    assert launched.executables() == sorted(["camera", "camera", "policy", "executor", "episode_logger"]), out
    assert sorted(launched.clean()) == sorted(label for label in pids if not label.startswith("policy-")), out[-4000:]
    assert_no_orphans(pids)


def test_record_launch_records_a_labelled_demo(graph, tmp_path):
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from corft_ros.core.episodes.reader import list_episodes
    from corft_ros.nodes.qos import RECORDED

    launched, probe = graph("launch", "record.launch.py", "human_like:=false", f"output_dir:={tmp_path / 'demos'}")
    teleop = probe.subscribe(Float64MultiArray, "/forward_position_controller/commands", RECORDED)
    wait_nodes(launched, probe, {"sim_arm", "teleop", "episode_logger"})
    assert probe.call(Trigger, "/corft/episode/start", Trigger.Request(), timeout=30).success
    teleop.wait(lambda m: len(m) >= 20, START_S)  # the scripted operator drives the arm
    assert probe.call(Trigger, "/corft/episode/stop", Trigger.Request(), timeout=30).success
    assert probe.call(SetBool, "/corft/episode/label", SetBool.Request(data=True), timeout=30).success
    stop_and_check(launched, ["sim_arm", "teleop", "episode_logger"])
    (info,) = list_episodes(tmp_path / "demos")
    assert info.success is True and info.dropped_total == 0 and not info.needs_repair, info
    assert info.topics["/forward_position_controller/commands"].count >= 1, info.topics


def test_benchmark_launch_ends_when_the_benchmark_is_done(graph, tmp_path):
    """The defect: after 'benchmark done' the graph ran on until Ctrl-C."""
    from corft_ros.core.trials.report import read_trials_csv

    report = tmp_path / "report"
    launched, _ = graph("launch", "benchmark.launch.py", "trials:=1", "timeout:=3.0", "realtime_factor:=0",
                        f"report:={report}")
    assert launched.wait(timeout=180) == 0, launched.output[-4000:]
    pids = launched.started()
    assert launched.executables() == sorted([*DEPLOY, "benchmark"]), launched.output[-4000:]
    assert set(launched.clean()) == set(pids), launched.output[-4000:]
    assert_no_orphans(pids)
    assert len(read_trials_csv(report / "trials.csv")) == 1 and (report / "report.md").is_file()


def test_benchmark_launch_that_fails_ends_with_a_non_zero_code(graph, tmp_path):
    launched, _ = graph("launch", "benchmark.launch.py", "regions:=moon", f"report:={tmp_path / 'r'}")
    assert launched.wait(timeout=START_S) == 1, launched.output[-4000:]
    assert "benchmark ended with exit code 2" in launched.output
    assert_no_orphans(launched.started())


def test_train_launch_trains_and_ends(graph, tmp_path):
    from corft_ros.core.dataset import synthetic

    robot = load_robot_config()
    synthetic.write_dataset(tmp_path / "eps", robot, 2, image_hw=(24, 32), duration_s=0.6)
    launched, _ = graph("launch", "train.launch.py", f"bags:={tmp_path / 'eps'}", "stage:=il", "steps:=2",
                        f"output:={tmp_path / 'run'}", "name:=launched")
    assert launched.wait(timeout=300) == 0, launched.output[-4000:]
    assert launched.executables() == ["trainer"] and len(launched.clean()) == 1, launched.output[-4000:]
    assert (tmp_path / "run" / "train.json").is_file()


def test_ros2_run_node_does_not_outlive_a_sigtermed_ros2_run(graph):
    """`ros2 run corft_ros executor`, then SIGTERM to `ros2 run` alone: upstream it exits and leaves its node."""
    launched, probe = graph("run", "executor")
    wait_nodes(launched, probe, {"executor"})
    (node_pid,) = children(launched.proc.pid)
    os.kill(launched.proc.pid, signal.SIGTERM)
    launched.wait()
    assert_no_orphans({"executor": node_pid})
