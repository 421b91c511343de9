"""benchmark: N trials of whatever drives the arm (policy → executor, or the scripted operator), one episode each.

A trial: set the sim's region and seed (`/<sim_node>/set_parameters`) and reset it (`/sim/reset`), or on a real
arm ask the operator to reset the scene and wait for Enter (or a call to `~/next`); publish the instruction; clear
the executor's chunk buffer (`/<executor_node>/clear`); start an episode (`/corft/episode/start`, logged by
episode_logger); wait for the end: the sim's success signal (`/sim/success`), the operator's label (key s/f, or a
call to `~/label`, SetBool), or the time limit (`q` or `~/quit` stops the run); label the episode
(`/corft/episode/label`) and stop it (`/corft/episode/stop`).

Per trial it keeps: success, duration (node-clock time, i.e. sim time with use_sim_time, from the episode start to
the first success signal, or to the end), the cube's start position, the end reason, and the control-loop and
inference numbers of the executor's and the policy's /diagnostics (rate, period error, underruns, max |Δq| at
chunk switches, latency p50/p95/max).

With `autostart` the node runs its own schedule (one arm: what this graph deploys) in a thread and rewrites the
report (`output_dir`: report.md, trials.csv, summary.json, PNG plots) after every trial; when the schedule is done
the node exits (`shutdown_when_done`) with the run's code (0 every trial ran, 1 errors, 2 no report folder, 130 the
operator quit), which ends `ros2 launch corft_ros benchmark.launch.py` and `corft-ros launch benchmark`.
`corft-ros benchmark` instead drives `run_trial` itself, switching arms (models, executor modes, the scripted
operator) between trials.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from corft_ros.core import topics
from corft_ros.core.node_params.benchmark import BenchmarkParams
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.core.sim.regions import REGIONS
from corft_ros.core.terminal import TerminalKeys
from corft_ros.core.trials.autorun import run_schedule
from corft_ros.core.trials.run import (
    CHUNKS,
    EXECUTOR_STATUS,
    POLICY_STATUS,
    BenchmarkError,
    QuitRequested,
    StallWatch,
    TrialOutcome,
    loop_record,
    wait_for,
    wait_trial_end,
)
from corft_ros.core.trials.stats import Trial
from corft_ros.core.trials.trials import TrialSpec
from corft_ros.nodes.common import ClosesOnDestroy, declare_params, run_node
from corft_ros.nodes.qos import LATCHED, RELIABLE


class BenchmarkNode(ClosesOnDestroy, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("benchmark", **kwargs)
        try:
            p = self.params = declare_params(self, BenchmarkParams)
        except ConfigError:
            Node.destroy_node(self)  # a refused node leaves nothing behind in the graph (nothing to close)
            raise
        self.robot = load_robot_config(p.robot_config or None)
        self.sim, self.arm, self.trials, self.timeout_s, self.first_seed = (p.sim, p.arm, p.trials, p.timeout_s,
                                                                           p.first_seed)
        self.regions = [r for r in p.regions if r]
        self.output_dir, self.autostart, self.stall_timeout_s = p.output_dir, p.autostart, p.stall_timeout_s
        self.shutdown_when_done = p.shutdown_when_done
        self.max_errors, self.settle_s, self.service_timeout_s = p.max_errors, p.settle_s, p.service_timeout_s
        self.instruction, self.sim_node, self.executor_node = p.instruction, p.sim_node, p.executor_node

        try:
            self._validate()
        except ConfigError:
            Node.destroy_node(self)  # a refused node leaves nothing behind in the graph (nothing to close)
            raise
        self._setup()

    def _validate(self) -> None:
        bad = [r for r in self.regions if r not in REGIONS]
        if bad or not self.regions:
            raise ConfigError(f"regions must be among {', '.join(REGIONS)}, got {self.regions}")

    def _setup(self) -> None:
        self.arm = Path(self.arm).name if "/" in self.arm else (self.arm or "policy")

        group = ReentrantCallbackGroup()
        self._reset = self.create_client(Trigger, topics.SIM_RESET, callback_group=group)
        self._sim_params = self.create_client(SetParameters, f"{self.sim_node}/set_parameters", callback_group=group)
        self._clear = self.create_client(Trigger, f"{self.executor_node}/clear", callback_group=group)
        self._start = self.create_client(Trigger, topics.EPISODE_START, callback_group=group)
        self._stop_ep = self.create_client(Trigger, topics.EPISODE_STOP, callback_group=group)
        self._label = self.create_client(SetBool, topics.EPISODE_LABEL, callback_group=group)
        self._instruction_pub = self.create_publisher(String, topics.INSTRUCTION, LATCHED)
        self.create_subscription(Bool, topics.SIM_SUCCESS, self._on_success, RELIABLE, callback_group=group)
        # takeovers during a trial (the executor's latched state): autonomous vs assisted success
        self.create_subscription(Bool, topics.INTERVENTION, self._on_intervention, LATCHED, callback_group=group)
        self._intervening = False
        self._takeovers = 0
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE,
                                 callback_group=group)
        # inferences per trial are the chunks seen during it: exact at any trial length (the policy's 1 Hz
        # /diagnostics counter can be the same at a short trial's start and end)
        self.create_subscription(JointTrajectory, topics.ACTION_CHUNK, self._on_chunk, RELIABLE, callback_group=group)
        self._chunks_seen = 0
        self.create_service(SetBool, "~/label", self._on_label_request, callback_group=group)
        self.create_service(Trigger, "~/next", self._on_next_request, callback_group=group)
        self.create_service(Trigger, "~/quit", self._on_quit_request, callback_group=group)

        self._lock = threading.Lock()
        self._success_value: bool | None = None
        self._success_at: float | None = None  # node-clock time of the first success after the trial started
        self._armed = False
        self._post_reset = threading.Event()
        self._reset_done = False
        self._operator_label: bool | None = None
        self._next = threading.Event()  # a real arm's "the scene is reset, start the trial" (~/next)
        self._waiting_next = False
        self._quit = threading.Event()  # the operator quit (~/quit or the q key)
        self._diag: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._keys: TerminalKeys | None = None
        self.outcomes: list[TrialOutcome] = []
        self.finished = threading.Event()  # autostart's schedule ended; `rc` says how
        self.rc = 0
        self._thread: threading.Thread | None = None
        if self.autostart:
            self._thread = threading.Thread(target=self._autorun, name="benchmark", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ callbacks
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_success(self, msg: Bool) -> None:
        t = self.now()
        with self._lock:
            self._success_value = bool(msg.data)
            if self._reset_done and not msg.data:
                self._post_reset.set()
            if self._armed and msg.data and self._success_at is None:
                self._success_at = t

    def _on_chunk(self, _msg: JointTrajectory) -> None:
        with self._lock:
            self._chunks_seen += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name in (EXECUTOR_STATUS, POLICY_STATUS):
                with self._lock:
                    self._diag[status.name] = {kv.key: kv.value for kv in status.values}

    def _on_label_request(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            armed = self._armed
            if armed:
                self._operator_label = bool(request.data)
        response.success = armed
        response.message = (f"trial labelled {'success' if request.data else 'failure'}" if armed
                            else "no trial running: nothing labelled")
        return response

    def _on_next_request(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = self._waiting_next
        response.message = "starting the trial" if response.success else "not waiting for a reset: ignored"
        if response.success:
            self._next.set()
        return response

    def _on_quit_request(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._quit.set()
        response.success, response.message = True, "the run stops (the current trial is not counted)"
        return response

    def forget_diagnostics(self) -> None:
        """Drop the stored /diagnostics (the policy/executor were replaced: their counters start again)."""
        with self._lock:
            self._diag.clear()

    # ------------------------------------------------------------------ services
    def _call(self, client, request, what: str, timeout: float | None = None):
        timeout = self.service_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout

        wait_for(client.service_is_ready, self._stop, deadline,
                 f"{what}: service {client.srv_name} is not available (waited {timeout:g} s)", 0.05)
        future = client.call_async(request)
        wait_for(future.done, self._stop, deadline, f"{what}: {client.srv_name} did not answer within {timeout:g} s",
                 0.01)
        result = future.result()
        if result is None:
            raise BenchmarkError(f"{what}: {client.srv_name} failed: {future.exception()}")
        return result

    def _set_sim(self, region: str, seed: int) -> None:
        request = SetParameters.Request()
        request.parameters = [Parameter("region", value=region).to_parameter_msg(),
                              Parameter("seed", value=int(seed)).to_parameter_msg()]
        result = self._call(self._sim_params, request, "set the sim's region and seed")
        for param, res in zip(request.parameters, result.results, strict=False):
            if not res.successful:
                raise BenchmarkError(f"sim refused {param.name}: {res.reason}")

    def _wait_clock(self, seconds: float) -> None:
        """Wait `seconds` of node-clock time (sim time with use_sim_time); BenchmarkError if the clock stalls."""
        start = self.now()
        watch = StallWatch(start, self.stall_timeout_s, "")
        while self.now() - start < seconds:
            if self._stop.is_set():
                raise QuitRequested("stopped")
            watch.check(self.now())
            time.sleep(0.01)

    def _on_intervention(self, msg: Bool) -> None:
        with self._lock:
            if msg.data and not self._intervening and self._armed:
                self._takeovers += 1
            self._intervening = bool(msg.data)

    # ------------------------------------------------------------------ one trial
    def run_trial(self, spec: TrialSpec, timeout_s: float | None = None) -> TrialOutcome:
        """Run one trial (blocking; call from a thread other than the executor's). Never raises for a trial that
        went wrong: the outcome says why (error) or that the operator quit."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        episode_started = False
        label: bool | None = None
        try:
            start_xy = (math.nan, math.nan)
            if self.sim:
                start_xy = self._reset_sim(spec)
            else:
                self._prompt_reset(spec)
            self._wait_clock(self.settle_s)
            if self._clear.service_is_ready() or self._clear.wait_for_service(timeout_sec=1.0):
                self._call(self._clear, Trigger.Request(), "clear the executor's chunk buffer")
            base = self._diag_snapshot()
            result = self._call(self._start, Trigger.Request(), "start the episode")
            if not result.success:
                raise BenchmarkError(f"episode_logger refused to start an episode: {result.message}")
            episode_started = True
            episode = result.message
            with self._lock:
                self._success_at, self._operator_label, self._armed = None, None, True
                self._takeovers = int(self._intervening)  # an operator already holding the arm counts
            t0 = self.now()
            reason, duration = self._wait_end(t0, timeout_s)
            label = reason == "success"
            with self._lock:
                takeovers = self._takeovers
            trial = Trial(arm=spec.arm, region=spec.region, seed=spec.seed, success=label,
                          duration_s=float(duration), timeout_s=float(timeout_s), start_x=float(start_xy[0]),
                          start_y=float(start_xy[1]), end_reason=reason, takeovers=takeovers)
            outcome = TrialOutcome(spec, trial, loop=self._loop_record(base), episode=episode)
        except QuitRequested as exc:
            outcome = TrialOutcome(spec, None, error=str(exc), quit=True)
        except BenchmarkError as exc:
            outcome = TrialOutcome(spec, None, error=str(exc))
        finally:
            with self._lock:
                self._armed = False
        if episode_started:
            try:
                if label is not None:
                    self._call(self._label, SetBool.Request(data=label), "label the episode", timeout=5.0)
                self._call(self._stop_ep, Trigger.Request(), "stop the episode", timeout=10.0)
            except (BenchmarkError, QuitRequested) as exc:
                outcome.error = outcome.error or str(exc)
                self.get_logger().error(str(exc))
        if outcome.error and not outcome.quit:
            self.get_logger().error(f"trial {spec.index + 1} ({spec.arm}, {spec.region}, seed {spec.seed}): "
                                    f"{outcome.error}")
        self.outcomes.append(outcome)
        return outcome

    def _reset_sim(self, spec: TrialSpec) -> tuple[float, float]:
        self._set_sim(spec.region, spec.seed)
        with self._lock:
            self._post_reset.clear()
            self._reset_done = False
        result = self._call(self._reset, Trigger.Request(), "reset the sim")
        if not result.success:
            raise BenchmarkError(f"sim reset failed: {result.message}")
        try:
            info = json.loads(result.message)
        except json.JSONDecodeError:
            raise BenchmarkError(f"/sim/reset reply is not JSON: {result.message[:80]!r}") from None
        with self._lock:
            self._reset_done = True
        text = self.instruction or str(info.get("instruction", ""))
        if text:
            self._instruction_pub.publish(String(data=text))
        # the sim publishes /sim/success (false) at its next camera tick after a reset: it is alive and reset
        deadline = time.monotonic() + self.stall_timeout_s
        while not self._post_reset.wait(0.05):
            if self._stop.is_set():
                raise QuitRequested("stopped")
            if time.monotonic() > deadline:
                raise BenchmarkError(f"no /sim/success after the reset within {self.stall_timeout_s:g} s "
                                     "(is the sim running?)")
        xy = info.get("cube_xy") or [math.nan, math.nan]
        return float(xy[0]), float(xy[1])

    def _prompt_reset(self, spec: TrialSpec) -> None:
        if self._keys is None:
            self._keys = TerminalKeys(name="benchmark-keys")
        text = self.instruction
        if text:
            self._instruction_pub.publish(String(data=text))
        name = self.get_fully_qualified_name()
        if self._keys.interactive:
            print(f"trial {spec.index + 1}: {spec.arm}, {spec.region} start position: place the object, then press "
                  f"Enter (q = quit; or call {name}/next)", flush=True)
        else:
            self.get_logger().info(f"trial {spec.index + 1} ({spec.arm}, {spec.region}): place the object, then call "
                                   f"{name}/next (std_srvs/Trigger); {name}/quit stops the run")
        self._next.clear()
        self._waiting_next = True
        try:
            while not self._next.is_set():
                key = self._keys.get()
                if key in ("\n", " "):
                    return
                if key == "q" or self._quit.is_set():
                    raise QuitRequested("the operator quit")
                if self._stop.is_set():
                    raise QuitRequested("stopped")
                time.sleep(0.05)
        finally:
            self._waiting_next = False

    def _wait_end(self, t0: float, timeout_s: float) -> tuple[str, float]:
        watch = StallWatch(t0, self.stall_timeout_s, " during the trial")
        if not self.sim and self._keys is not None and self._keys.interactive:
            print(f"  s = success, f = failure, q = quit (or call {self.get_fully_qualified_name()}/label)",
                  flush=True)
        return wait_trial_end(t0, timeout_s, self.now, watch, self._stop, self._quit, self._end_signals, self._keys)

    def _end_signals(self) -> tuple[float | None, bool | None]:
        """(node-clock time of the first success since the trial started, the operator's label), either None."""
        with self._lock:
            return self._success_at, self._operator_label

    # ------------------------------------------------------------------ loop statistics
    def _diag_snapshot(self) -> dict[str, dict[str, str]]:
        with self._lock:
            snapshot = {k: dict(v) for k, v in self._diag.items()}
            snapshot[CHUNKS] = {"inferences": str(self._chunks_seen)}
            return snapshot

    def _loop_record(self, base: dict[str, dict[str, str]]) -> dict[str, float]:
        return loop_record(self._diag_snapshot(), base)

    # ------------------------------------------------------------------ autostart: this graph's one arm
    def _autorun(self) -> None:
        try:
            self.rc = self._run_schedule()
        except Exception as exc:  # a bug must not leave a graph that never ends
            self.get_logger().error(f"benchmark failed: {type(exc).__name__}: {exc}")
            self.rc = 1
        finally:
            self.finished.set()

    def _run_schedule(self) -> int:
        """The autostart run (core/trials/autorun.py): every trial of the schedule, the report rewritten after each.
        Returns the exit code."""
        logger = self.get_logger()
        return run_schedule(self.arm, self.regions, self.trials, self.first_seed, self.output_dir, self.max_errors,
                            " ".join(sys.argv) or "benchmark node", self.run_trial, self._stop.is_set,
                            logger.info, logger.error)

    def close(self) -> None:
        stop, thread, keys = getattr(self, "_stop", None), getattr(self, "_thread", None), getattr(self, "_keys", None)
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if keys is not None:
            keys.close()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: BenchmarkNode(), args,
                    until=lambda node: node.shutdown_when_done and node.finished.is_set(),
                    exit_code=lambda node: node.rc)


if __name__ == "__main__":
    raise SystemExit(main())
