"""The manifest of ``painterly video``'s frames folder (``FrameFolder.MANIFEST``): the settings a folder
of frames was made with, written before the first frame, so that a later command continues it only
under the same settings (and with the seed drawn then).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..video.clip import FrameFolder

MANIFEST_VERSION = 2
# 2: clips are read upright (their display rotation applied) and frame files in numeric order; frames
# made under 1 may be sideways or in another order, so a folder of them is not continued.


def same_version(folder: Path, manifest: dict[str, Any]) -> None:
    """Frames made by another version of the manifest's rules are not continued (they could be
    sideways, or in another order, than the frames this version makes)."""
    if manifest.get("version") != MANIFEST_VERSION:
        raise ConfigError(
            f"{folder}: its frames were made by another version of painterly, which reads clips differently "
            "(rotation, frame order); remove it, or choose another output, to start over"
        )


def agree_with_manifest(folder: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """A folder of earlier frames continues only under the same settings (the seed drawn then is kept)."""
    from ..files import make_folder, write_bytes

    plan = json.loads(json.dumps(plan))  # as it reads back (tuples become lists)
    path = FrameFolder(folder).manifest
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(f"{path}: damaged; remove {folder} to start over") from None
        same_version(folder, old)
        if plan["config"].get("seed") is None:
            plan["config"]["seed"] = old.get("config", {}).get("seed")
        changed = differences(old, plan)
        if changed:
            raise ConfigError(
                f"{folder}: holds frames made with other settings ({'; '.join(changed)}); "
                "run with those settings to continue, or remove it, or choose another output, to start over"
            )
        return {**old, "output": plan["output"], "save_every": plan["save_every"], "keep_frames": plan["keep_frames"]}
    if plan["config"].get("seed") is None:
        import random

        plan["config"]["seed"] = random.randrange(2**31)
    try:
        make_folder(folder)
        write_bytes(path, (json.dumps(plan, indent=1) + "\n").encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot write there: {exc.strerror or exc}") from None
    return plan


def differences(old: dict[str, Any], new: dict[str, Any], most: int = 3) -> list[str]:
    """What differs between the manifest's settings and this command's, each as "FIELD was X, now Y"
    (FIELD in backticks: the CLI renders it as its --flag), at most ``most`` of them and a count of
    the rest."""
    from ..errors import clip, shown

    def files(value: Any) -> str:
        return clip(", ".join(value)) if isinstance(value, list) else shown(value)

    named = {"input": "the input was", "styles": "the styles were", "init": "`init` was"}
    found = [f"{named[k]} {files(old.get(k))}, now {files(new.get(k))}" for k in named if old.get(k) != new.get(k)]
    for part in ("config", "video", "range"):
        was, now = old.get(part) or {}, new.get(part) or {}
        found += [f"`{k}` was {shown(was.get(k))}, now {shown(now.get(k))}" for k in sorted({*was, *now}) if was.get(k) != now.get(k)]
    if len(found) > most:
        found = [*found[:most], f"and {len(found) - most} more"]
    return found
