"""`corft-ros bag info` on what is no episode: one line naming why and what to pass instead, and a non-zero exit;
an episode (or its bag folder) is still read."""

from __future__ import annotations

from pathlib import Path

from corft_ros.cli import main
from corft_ros.core.dataset.synthetic import SyntheticEpisode, write_episode
from corft_ros.core.robot import load_robot_config


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bag_info_refuses_what_is_no_episode(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a bag")
    assert main(["bag", "info", str(empty)]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {empty} is no episode: no episode.yaml and no .mcap/.db3 bag"), line
    assert "repair" not in line

    assert main(["bag", "info", str(empty / "notes.txt")]) == 1
    assert "is no episode" in _one_error_line(capsys)

    episodes = tmp_path / "episodes"
    robot = load_robot_config()
    write_episode(episodes / "a", robot, SyntheticEpisode(seed=1))
    write_episode(episodes / "b", robot, SyntheticEpisode(seed=2))
    assert main(["bag", "info", str(episodes)]) == 1
    line = _one_error_line(capsys)
    assert "holds 2 episodes" in line and f"corft-ros bag ls {episodes}" in line, line


def test_bag_info_reads_an_episode_and_its_bag_folder(tmp_path, capsys):
    episode = tmp_path / "one"
    write_episode(episode, load_robot_config(), SyntheticEpisode(seed=3))
    for path in (episode, episode / "bag"):
        assert main(["bag", "info", str(path)]) == 0
        out = capsys.readouterr()
        assert out.err == "" and f"episode:      {Path(episode)}" in out.out and "/joint_states" in out.out
