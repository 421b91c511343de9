"""Each node's parameters are declared once (core/node_params): every key of every config YAML is a declared
parameter of its node, graph YAMLs hold only overrides, and the spec's validation gives one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from corft_ros.core.node_params import executables, lookup, params_class
from corft_ros.core.params import coerce, declared, flatten, from_values
from corft_ros.core.robot import ConfigError

CONFIG = Path(__file__).resolve().parents[3] / "config"


def sections(path: Path) -> list[tuple[str, str, dict]]:
    """(section, executable, flat parameters) of every node section of a config YAML."""
    data = yaml.safe_load(path.read_text()) or {}
    nodes = ((data.get("launch") or {}).get("ros__parameters") or {}).get("nodes") or {}
    out = []
    for section, body in data.items():
        if section in ("launch", "robot") or not isinstance(body, dict) or "ros__parameters" not in body:
            continue
        assert section != "/**", f"{path.name}: a graph YAML names its nodes"
        executable = str((nodes.get(section) or {}).get("executable", section))
        out.append((section, executable, flatten(body["ros__parameters"] or {})))
    return out


ALL = [(p.name, s, e, v) for p in sorted(CONFIG.glob("*.yaml")) for s, e, v in sections(p)]


def test_every_config_yaml_key_is_a_declared_parameter_of_its_node():
    assert len(ALL) >= 20  # every graph's nodes and the per-node files
    unknown = [f"{file}: {section}.{key} ({executable})" for file, section, executable, values in ALL
               for key in values if lookup(executable, key, values) is None]
    assert not unknown, "not declared by the node: " + ", ".join(unknown)


def test_the_parameter_reference_is_generated_from_the_declarations():
    from corft_ros.core.node_params import reference_markdown

    assert (CONFIG.parent / "docs" / "parameters.md").read_text() == reference_markdown(), (
        "docs/parameters.md is stale: python -m corft_ros.core.node_params > docs/parameters.md")


def test_graph_yamls_hold_only_overrides():
    """A value equal to the node's declared default is written in one place only: the spec."""
    restated = []
    for file, section, executable, values in ALL:
        for key, value in values.items():
            default = lookup(executable, key, values)[0]
            try:
                same = coerce(value, default, key) == default if default not in (None, "") else value == default
            except ConfigError:
                same = False
            if same:
                restated.append(f"{file}: {section}.{key}")
    assert not restated, "restates the declared default: " + ", ".join(restated)


def test_every_node_has_a_spec_with_described_parameters():
    assert executables() == ["benchmark", "camera", "episode_logger", "executor", "policy", "sim_arm", "teleop",
                             "trainer"]
    for name in executables():
        specs = declared(params_class(name))
        assert "robot_config" in specs, name
        assert all(info.description for _, info in specs.values()), name


def test_spec_validation_names_the_parameter_on_one_line():
    from corft_ros.core.node_params.executor import ExecutorParams

    assert from_values(ExecutorParams, {"k": "5", "m": 0}).k == 5
    for values, needle in [({"mode": "smooth"}, "mode must be one of temporal_ensembling"),
                           ({"k": 0}, "k must be >= 1, got 0"),
                           ({"staleness_timeout": 0.0}, "staleness_timeout must be positive, got 0.0"),
                           ({"thread_priority": 100}, "thread_priority must be <= 99, got 100"),
                           ({"k": "many"}, "k: cannot use 'many' as a int"),
                           ({"managed": "perhaps"}, "managed: cannot use 'perhaps' as a bool")]:
        with pytest.raises(ConfigError, match=needle) as err:
            from_values(ExecutorParams, values)
        assert "\n" not in str(err.value)


def test_one_coercer_for_launch_arguments_set_values_and_parameters():
    assert coerce("1.5", 1.0, "x") == 1.5 and coerce("2", 1.0, "x") == 2.0 and coerce("1e-6", 1.0, "x") == 1e-6
    assert coerce("3", 0, "x") == 3 and coerce(4.0, 0, "x") == 4
    assert coerce("front, wrist", [], "x") == ["front", "wrist"] and coerce("", ["a"], "x") == []
    assert coerce("on", False, "x") is True and coerce("0", True, "x") is False
    assert coerce(5, "", "x") == "5" and coerce("", None, "x") is None
    with pytest.raises(ConfigError, match="x: cannot use 2.5 as a int"):
        coerce(2.5, 0, "x")


def test_node_specs_take_shared_defaults_from_the_core_configs():
    """Where a node parameter and a core config share a name and a default (the executor's blending, the sim's pacing
    and scene, the rollout's rates), the spec names the core config's field instead of writing the number again."""
    import ast
    import dataclasses

    from corft_ros.core.chunking.executor import ExecutorConfig
    from corft_ros.core.sim.pacing import PacingConfig
    from corft_ros.core.sim.rollout import RolloutConfig
    from corft_ros.core.sim.scene import SceneConfig

    shared = {}
    for config in (ExecutorConfig, PacingConfig, RolloutConfig, SceneConfig):
        for f in dataclasses.fields(config):
            if f.default is not dataclasses.MISSING:
                shared.setdefault(f.name, []).append(f.default)
    restated = []
    for path in sorted((Path(__file__).resolve().parents[3] / "corft_ros" / "core" / "node_params").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "param"):
                continue
            default = node.value.args[0]
            try:
                literal = ast.literal_eval(default)
            except ValueError:
                continue  # an expression (a core config's field, a constant): not written again
            literal = tuple(literal) if isinstance(literal, list) else literal
            if node.target.id in shared and literal in [tuple(d) if isinstance(d, list) else d
                                                       for d in shared[node.target.id]]:
                restated.append(f"{path.name}: {node.target.id} = {literal!r}")
    assert not restated, f"defaults written again beside the core config that owns them: {restated}"


# --------------------------------------------------------------------------- the training parameters

def test_the_training_parameter_reference_is_generated_from_the_declarations():
    from corft_ros.core.rl.config import reference_markdown

    assert (CONFIG.parent / "docs" / "training_parameters.md").read_text() == reference_markdown(), (
        "docs/training_parameters.md is stale: python -m corft_ros.core.rl.config > docs/training_parameters.md")


def test_every_training_config_field_is_a_described_parameter():
    """Every field of the training configs is declared with `param` and a description: parameter groups (a field
    holding another config), TrainConfig.policy (PolicyConfig overrides) and PolicyConfig.joint_names (the robot's)
    are the only exceptions."""
    import dataclasses

    from corft_ros.core.dataset.config import DatasetConfig
    from corft_ros.core.params import PARAM
    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.rl.config import CORFTConfig, ILConfig, TrainConfig, training_params
    from corft_ros.core.rl.rewards import RewardConfig

    undescribed = []
    for cls in (TrainConfig, ILConfig, CORFTConfig, DatasetConfig, RewardConfig, PolicyConfig):
        for f in dataclasses.fields(cls):
            group = isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            if group or (cls, f.name) in ((TrainConfig, "policy"), (PolicyConfig, "joint_names")):
                continue
            info = f.metadata.get(PARAM)
            if info is None or not info.description.strip():
                undescribed.append(f"{cls.__name__}.{f.name}")
    assert not undescribed, f"fields without a param(default, description): {undescribed}"
    specs = training_params()
    assert {"il_steps", "corft.gamma", "dataset.image_size", "rewards.step_cost", "policy.chunk_size"} <= set(specs)
    assert "rewards.gamma" not in specs and "policy" not in specs  # corft.gamma; a group
    assert all(info.description.strip() for _, info in specs.values())


def test_every_training_parameter_name_is_what_config_from_params_takes():
    import dataclasses

    from corft_ros.core.rl.config import TrainConfig, config_from_params, training_params

    defaults = dataclasses.asdict(TrainConfig())
    for name, (default, _) in training_params().items():
        cfg = config_from_params({name: default})
        if name.startswith("policy."):
            assert cfg.policy == {name.split(".", 1)[1]: default}
            continue
        data = dataclasses.asdict(cfg)
        if name in ("dataset.rate_hz", "dataset.cache_dir"):  # 0.0 and '' (ROS-typable) stand for None
            data["dataset"][name.split(".")[1]] = None
        assert data == defaults, name
        cfg.validate()


def test_the_declared_checks_are_what_the_configs_enforce():
    """A value outside a training parameter's declared choices/min/above/max is refused by validate() (and a
    PolicyConfig field's by PolicyConfig): the reference's `checked` column is what the code checks. (Each value
    breaks one parameter of an otherwise default config, so the error is that parameter's.)"""
    from corft_ros.core.params import declared
    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.rl.config import config_from_params, training_params

    def bad_values(info):
        if info.choices:
            yield "bogus"
        if info.min is not None:
            yield info.min - 1
        if info.above is not None:
            yield info.above
        if info.max is not None:
            yield info.max + 1

    checked = 0
    for name, (_, info) in training_params().items():
        if name.startswith("policy."):
            continue
        for value in bad_values(info):
            with pytest.raises(ConfigError):
                config_from_params({name: value}).validate()
            checked += 1
    for name, (_, info) in declared(PolicyConfig).items():
        for value in bad_values(info):
            with pytest.raises(ConfigError, match="policy config"):
                PolicyConfig(joint_names=["j"], **{name: value})
            checked += 1
    assert checked >= 40
