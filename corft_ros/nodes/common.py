"""Small helpers shared by the node adapters: parameters, stamps, diagnostics, main()."""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy._rclpy_pybind11 import InvalidHandle
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from corft_ros.core.process import StopSignals, end_with_launcher
from corft_ros.core.robot import ConfigError

# Publishers of the data the episode logger records keep this much history. A reliable KEEP_LAST writer drops the
# samples a reader has not acknowledged once its history is full, so a logger process stalled for a few seconds
# (swap, a busy machine) would lose them. 1000 = 10 s of /joint_states at 100 Hz. Measured: the logger paused 5 s
# while the sim arm published /joint_states with depth 10 lost 141 of 186 (test_faults.py).


def declare(node: Node, name: str, default, description: str, dynamic: bool = False, type_: int | None = None):
    """Declare a parameter with a description and return its value.

    Parameters are read-only unless `dynamic` (the node applies a new value when it is set, through its
    on-set-parameters callback): a startup-only parameter that `ros2 param set` could change without effect would
    lie to the user. `type_` (rcl_interfaces ParameterType) is needed where the default cannot tell the type
    (an empty list)."""
    descriptor = ParameterDescriptor(description=description, read_only=not dynamic)
    if type_ is None:
        return node.declare_parameter(name, default, descriptor).value
    descriptor.type = type_
    if default is None or (isinstance(default, (list, tuple)) and not default):
        # An empty default has no type of its own (rclpy would call it a byte array): declare by type; unset
        # means the default.
        parameter = node.declare_parameter(name, Parameter.Type(type_), descriptor)
        return default if parameter.type_ == Parameter.Type.NOT_SET else parameter.value
    return node.declare_parameter(name, default, descriptor).value


_ARRAY_TYPES = {"string": ParameterType.PARAMETER_STRING_ARRAY, "double": ParameterType.PARAMETER_DOUBLE_ARRAY,
                "integer": ParameterType.PARAMETER_INTEGER_ARRAY}


def declare_params(node: Node, cls: type, defaults: dict | None = None, prefix: str = ""):
    """Declare every parameter of the node's parameter dataclass (`corft_ros.core.node_params`), named
    `<prefix><name>`, and return an instance holding the values: coerced to each default's type and validated
    against the spec (a bad value is a ConfigError naming the parameter). `defaults` replaces spec defaults
    known only at runtime (the robot's joint names)."""
    from corft_ros.core.params import declared, from_values

    values = {}
    for name, (default, info) in declared(cls).items():
        if defaults and name in defaults:
            default = defaults[name]
        values[name] = declare(node, prefix + name, default, info.description, dynamic=info.dynamic,
                               type_=_ARRAY_TYPES.get(info.array))
    return from_values(cls, values)


def stamp_to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(seconds: float) -> Time:
    sec = int(seconds // 1)
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=sec, nanosec=nanosec)


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
    """`level` is one of DiagnosticStatus.OK / WARN / ERROR / STALE."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()],
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


EXECUTOR_ENV = "CORFT_ROS_EXECUTOR"


class ClosesOnDestroy:
    """For nodes that own threads or files: destroy_node() first calls the node's close() (stop its threads, finish
    what it writes), which run_node also calls at shutdown. Put it before Node in the bases."""

    def close(self) -> None:
        pass

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()  # type: ignore[misc]


def make_executor(context: rclpy.Context | None = None, threads: int = 4) -> Executor:
    """The executor every corft_ros process spins its nodes with.

    rclpy's EventsExecutor (C++, one thread) where the installed rclpy has it: the Python executors rebuild a
    wait set on every wake-up and, measured here with the record graph in one process (sim at 100 Hz, /clock,
    camera frames, a raw-subscribing logger), spent ~85% of the GIL doing so and ran the sim at 0.2-0.35x real
    time; with the events executor the same graph keeps real time. No corft_ros callback blocks on another
    callback (long work runs in the nodes' own threads), so one thread suffices. `CORFT_ROS_EXECUTOR=multithreaded`
    selects rclpy's Python executors instead (also the fallback on distributions without EventsExecutor):
    multi-threaded, or single-threaded for `threads=1`.
    """
    choice = os.environ.get(EXECUTOR_ENV, "events").strip().lower()
    if choice not in ("events", "multithreaded"):
        raise ConfigError(f"{EXECUTOR_ENV} must be 'events' or 'multithreaded', got '{choice}'")
    if choice == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:  # rclpy before Kilted
            pass
        else:
            try:
                return EventsExecutor(context=context)
            except io.UnsupportedOperation:
                # Its wrapper enables faulthandler on sys.stderr, which fails when stderr is not a file (pytest's
                # capture): build it as the wrapper does, without that step.
                from rclpy.impl.implementation_singleton import rclpy_implementation

                context = context or rclpy.get_default_context()
                executor = rclpy_implementation.EventsExecutor(context)
                context.on_shutdown(executor.wake)
                return executor
    if threads == 1:
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=threads, context=context)


def spin(executor: Executor, context: rclpy.Context | None = None, stop: threading.Event | None = None) -> None:
    """Spin until the context shuts down (or `stop` is set), in spin_once steps: EventsExecutor.spin() of the Kilted
    wheels busy-loops without ever running a callback (measured), while its spin_once works."""
    context = context or rclpy.get_default_context()
    while context.ok() and not (stop is not None and stop.is_set()):
        try:
            executor.spin_once(timeout_sec=0.1)
        except InvalidHandle:
            continue  # a node was destroyed while its entities were being collected: the next pass is clean
        except RuntimeError as exc:
            if "changed size during iteration" in str(exc):
                continue  # another thread created or removed an entity while they were being collected
            if not context.ok() or (stop is not None and stop.is_set()):
                return
            raise
        except Exception:
            if not context.ok() or (stop is not None and stop.is_set()):
                return  # shut down while waiting
            raise


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 4,
             errors: tuple[type[Exception], ...] = (), until: Callable[[Node], bool] | None = None,
             exit_code: Callable[[Node], int] | None = None) -> int:
    """Every node's main(): init, build the node (a ConfigError, or one of `errors`, exits 2 with its one-line
    message), spin until SIGINT/SIGTERM (or until `until(node)`), close and destroy it; the exit code is
    `exit_code(node)` (default 0).

    Stopping (corft_ros.core.process): the first SIGINT/SIGTERM ends the spin loop and a repeated SIGINT is ignored,
    so a terminal's Ctrl-C (SIGINT from the terminal and again from `ros2 launch`) closes the node once, with its
    context still up (the executor sends its hold command, the logger closes its bag); launch's SIGTERM 5 s after a
    SIGINT dumps the stacks and exits 1; started by `ros2 launch` or `ros2 run`, the node gets SIGTERM when that
    process ends (upstream launch leaves its nodes running on SIGTERM)."""
    stop = StopSignals().install()
    end_with_launcher()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = factory()
    except (ConfigError, *errors) as exc:
        print(f"error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = make_executor(threads=threads)
    executor.add_node(node)
    code = 0
    try:
        if until is None:
            spin(executor, stop=stop.event)
        else:
            while rclpy.ok() and not stop.event.is_set() and not until(node):
                executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        if exit_code is not None:
            code = exit_code(node)
        node.destroy_node()
        rclpy.try_shutdown()
        stop.finished()
    return code
