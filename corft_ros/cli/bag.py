"""`corft-ros bag ls|info|repair|export-lerobot|import-lerobot`: list, inspect, repair and convert recorded
episodes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    bag = commands.add_parser("bag", help="list, inspect and repair recorded episodes")
    sub = bag.add_subparsers(dest="bag_command", required=True, metavar="BAG_COMMAND")
    ls = sub.add_parser("ls", help="list the episodes under a folder")
    ls.add_argument("root", nargs="?", default="episodes", help="episodes folder (default: ./episodes)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_bag_ls)
    info = sub.add_parser("info", help="metadata, durations, message counts per topic, drops of episodes")
    info.add_argument("paths", nargs="+", help="episode folders (or their bag folders)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_bag_info)
    repair = sub.add_parser("repair", help="rebuild a killed recording's MCAP index and metadata.yaml")
    repair.add_argument("paths", nargs="+", help="episode folders, or an episodes folder with --all")
    repair.add_argument("--all", action="store_true", help="repair every episode under the given folders")
    repair.add_argument("--force", action="store_true", help="rewrite even bags that look intact")
    repair.set_defaults(func=cmd_bag_repair)
    export = sub.add_parser("export-lerobot", help="episodes -> a LeRobotDataset (format v2.1), frames at the "
                                                   "trainer's ticks")
    export.add_argument("episodes", help="episodes folder (demos and/or logged rollouts), or one episode")
    export.add_argument("--output", required=True, help="dataset folder to create (must not exist or be empty)")
    export.add_argument("--format", default="v2.1", help="dataset format: v2.1 (lerobot 0.3.x)")
    export.add_argument("--fps", type=int, default=None, help="frames per second (default: robot.yaml's "
                                                              "action_rate_hz)")
    export.add_argument("--cameras", default="", help="comma-separated camera names (default: every recorded one)")
    export.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="frame size (default: the cameras' own)")
    export.add_argument("--video", default="lossless", choices=["lossless", "lerobot"],
                        help="lossless: H.264 RGB, frames equal the bags' (default); lerobot: LeRobot's AV1 "
                             "default, ~10x smaller, lossy")
    export.add_argument("--robot-config", default="", help="robot.yaml (default: the package's)")
    export.set_defaults(func=cmd_bag_export_lerobot)
    imp = sub.add_parser("import-lerobot", help="a LeRobotDataset (v2.1) -> episodes the trainer reads")
    imp.add_argument("dataset", help="LeRobotDataset folder (meta/info.json inside)")
    imp.add_argument("--output", required=True, help="episodes folder (created if missing)")
    imp.add_argument("--label", default="keep", choices=["keep", "success", "failure"],
                     help="keep the dataset's success labels (unlabelled episodes count as demos: success), or "
                          "mark every episode")
    imp.add_argument("--robot-config", default="", help="robot.yaml (default: the package's)")
    imp.set_defaults(func=cmd_bag_import_lerobot)


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _info_dict(info) -> dict:
    return {
        "path": str(info.path),
        "episode_id": info.episode_id,
        "instruction": info.instruction,
        "label": info.label,
        "status": info.status,
        "operator": info.operator,
        "duration_s": info.duration_s,
        "messages": info.message_total,
        "dropped": info.dropped_total,
        "needs_repair": info.needs_repair,
        "interventions": info.interventions,
        "error": info.error,
        "topics": {t: {"type": s.msgtype, "count": s.count, "dropped": s.dropped} for t, s in info.topics.items()},
    }


def cmd_bag_ls(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError, list_episodes

    try:
        infos = list_episodes(args.root)
    except EpisodeReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([_info_dict(i) for i in infos], indent=2))
        return 0
    if not infos:
        print(f"no episodes under {args.root}")
        return 0
    print(f"{'episode':<48} {'label':<10} {'duration':>9} {'messages':>9} {'dropped':>8} {'takeovers':>9}  status")
    for i in infos:
        takeovers = "-" if i.interventions is None else str(i.interventions)
        print(f"{i.path.name:<48} {i.label:<10} {_fmt_duration(i.duration_s):>9} {i.message_total:>9} "
              f"{i.dropped_total:>8} {takeovers:>9}  {i.status}{'  ' + i.error if i.error else ''}")
    n_ok = sum(1 for i in infos if i.success)
    print(f"{len(infos)} episodes, {n_ok} successful, {sum(i.dropped_total for i in infos)} messages dropped")
    return 0


def _not_an_episode(path: Path) -> str:
    """Why `path` is no episode folder (no episode.yaml, no bag), with what to do instead; '' for an episode."""
    from corft_ros.core.episodes import bag_dir_of, data_files, episode_dir_of, find_bags
    from corft_ros.core.episodes.layout import looks_like_episode_dir

    bag = bag_dir_of(path)
    if looks_like_episode_dir(episode_dir_of(path)) or (bag.is_dir() and data_files(bag)):
        return ""
    inside = find_bags(path) if path.is_dir() else []
    if inside:
        return f"it holds {len(inside)} episodes (list them with `corft-ros bag ls {path}`, then pass one)"
    return "no episode.yaml and no .mcap/.db3 bag in it (pass a folder `corft-ros record` or the logger wrote)"


def cmd_bag_info(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError, episode_info, load_episode_metadata

    rc = 0
    out = []
    for path in args.paths:
        if not Path(path).exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            rc = 1
            continue
        problem = _not_an_episode(Path(path))
        if problem:
            print(f"error: {path} is no episode: {problem}", file=sys.stderr)
            rc = 1
            continue
        info = episode_info(path)
        data = _info_dict(info)
        try:
            data["metadata"] = load_episode_metadata(path)
        except (EpisodeReadError, OSError) as exc:
            data["metadata"] = None
            data["error"] = data["error"] or str(exc)
        out.append(data)
        if args.json:
            continue
        meta = data["metadata"] or {}
        print(f"episode:      {info.path}")
        print(f"instruction:  {info.instruction!r}")
        print(f"label:        {info.label}    status: {info.status}")
        print(f"operator:     {meta.get('operator', '')}  source: {meta.get('source', '')}  "
              f"robot: {meta.get('robot', '')}")
        print(f"duration:     {_fmt_duration(info.duration_s)}  cycle time: {meta.get('cycle_time_s')}")
        print(f"software:     corft_ros {meta.get('software_version', '?')}  "
              f"compression: {meta.get('compression', '?')}")
        if info.needs_repair:
            print("bag:          NOT CLOSED (writer killed?) - run `corft-ros bag repair` ")
        if info.error:
            print(f"error:        {info.error}")
        print(f"{'topic':<44} {'type':<38} {'count':>8} {'dropped':>8}")
        for topic, s in sorted(info.topics.items()):
            print(f"{topic:<44} {s.msgtype:<38} {s.count:>8} {s.dropped:>8}")
        print()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return rc


def cmd_bag_repair(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError, list_episodes, repair_episode

    targets: list[Path] = []
    for path in args.paths:
        p = Path(path)
        if not p.exists():
            print(f"error: {p} does not exist", file=sys.stderr)
            return 1
        targets.extend([i.path for i in list_episodes(p)] if args.all else [p])
    rc = 0
    for target in targets:
        try:
            print(repair_episode(target, force=args.force).summary())
        except (EpisodeReadError, OSError, ValueError) as exc:
            print(f"error: {target}: {exc}", file=sys.stderr)
            rc = 1
    return rc


def _robot(path: str):
    from corft_ros.core.robot import load_robot_config

    return load_robot_config(path or None)


def cmd_bag_export_lerobot(args: argparse.Namespace) -> int:
    from corft_ros.core.episodes import EpisodeReadError
    from corft_ros.core.lerobot.export import export_dataset
    from corft_ros.core.robot import ConfigError

    if args.format != "v2.1":
        print(f"error: --format {args.format}: only v2.1 is written (lerobot 0.3.x); lerobot 0.4 converts v2.1 to "
              f"v3.0 with its own convert_dataset_v21_to_v30 script", file=sys.stderr)
        return 2
    cams = [c.strip() for c in args.cameras.split(",") if c.strip()] or None
    try:
        report = export_dataset(args.episodes, args.output, _robot(args.robot_config), fps=args.fps, cameras=cams,
                                image_size=tuple(args.image_size) if args.image_size else None, quality=args.video)
    except (EpisodeReadError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def cmd_bag_import_lerobot(args: argparse.Namespace) -> int:
    from corft_ros.core.lerobot.importer import import_dataset
    from corft_ros.core.robot import ConfigError

    try:
        report = import_dataset(args.dataset, args.output, _robot(args.robot_config), label=args.label)
    except (ConfigError, ValueError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
