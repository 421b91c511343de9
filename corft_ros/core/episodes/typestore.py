"""Message definitions for bag connections: the rosbags Kilted typestore, plus .msg files found on disk.

A bag is only useful to ROS tools when each connection carries the message definition and its RIHS01 hash;
both come from here. Types that neither source knows cannot be recorded (TypeResolutionError names them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from corft_ros.core.episodes.errors import TypeResolutionError

_lock = threading.Lock()


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The newest ROS 2 store rosbags ships that matches our runtime (Kilted); extended on demand."""
    return get_typestore(Stores.ROS2_KILTED)


def _split(msgtype: str) -> tuple[str, str]:
    parts = msgtype.split("/")
    if len(parts) == 3 and parts[1] == "msg" and all(parts):
        return parts[0], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise TypeResolutionError(f"message type '{msgtype}' is not of the form pkg/msg/Name")


def normalize_msgtype(msgtype: str) -> str:
    pkg, name = _split(msgtype)
    return f"{pkg}/msg/{name}"


def _register_from_msg_files(msgtype: str, search_paths: Iterable[Path], depth: int = 0) -> bool:
    """Register `msgtype` (and message dependencies) from <path>/<pkg>/msg/<Name>.msg files."""
    store = typestore()
    if msgtype in store.fielddefs:
        return True
    pkg, name = _split(msgtype)
    paths = list(search_paths)
    for base in paths:
        file = Path(base) / pkg / "msg" / f"{name}.msg"
        if file.is_file():
            types = get_types_from_msg(file.read_text(), msgtype)
            # Dependencies first, so hashing and definition generation can find them.
            for _, fields_ in types.values():
                for _fname, ftype in fields_:
                    for dep in _nested_type_names(ftype):
                        if dep not in store.fielddefs and depth < 8:
                            _register_from_msg_files(dep, paths, depth + 1)
            store.register(types)
            return True
    return False


def _nested_type_names(ftype: object) -> list[str]:
    """Names of message types referenced by a rosbags field description (nested tuples)."""
    names: list[str] = []
    if isinstance(ftype, tuple):
        for item in ftype:
            if isinstance(item, str) and "/msg/" in item:
                names.append(item)
            else:
                names.extend(_nested_type_names(item))
    return names


def resolve_msgdef(msgtype: str, search_paths: Iterable[str | Path] = ()) -> tuple[str, str]:
    """(message definition text in ros2msg form, RIHS01 hash) for `msgtype`."""
    msgtype = normalize_msgtype(msgtype)
    with _lock:
        store = typestore()
        if msgtype not in store.fielddefs:
            try:
                found = _register_from_msg_files(msgtype, [Path(p) for p in search_paths])
            except Exception as exc:  # a malformed .msg file
                raise TypeResolutionError(f"message type '{msgtype}': cannot parse its definition ({exc})") from None
            if not found:
                raise TypeResolutionError(
                    f"message type '{msgtype}' is unknown (not in the rosbags Kilted typestore, no {msgtype}.msg found)"
                )
        try:
            msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
            return msgdef, store.hash_rihs01(msgtype)
        except Exception as exc:
            raise TypeResolutionError(f"message type '{msgtype}': {exc}") from None


def hash_for_definition(msgtype: str, msgdef: str) -> str:
    """RIHS01 hash for a definition read back from a bag (repair); registers the type when it is new."""
    with _lock:
        store = typestore()
        if msgtype not in store.fielddefs:
            try:
                from rosbags.typesys import get_types_from_idl

                if msgdef.startswith("=" * 80 + "\nIDL: "):
                    store.register(get_types_from_idl(msgdef))
                else:
                    # A ros2msg definition with dependencies: sections separated by '====' + 'MSG: name'.
                    sections = msgdef.split("=" * 80 + "\n")
                    types = {}
                    types.update(get_types_from_msg(sections[0], msgtype))
                    for sec in sections[1:]:
                        head, _, body = sec.partition("\n")
                        if head.startswith("MSG: "):
                            types.update(get_types_from_msg(body, normalize_msgtype(head[5:].strip())))
                    store.register(types)
            except Exception:
                return ""
        try:
            return store.hash_rihs01(msgtype)
        except Exception:
            return ""
