"""Dated, immutable copies of what was published: ``snapshots/YYYY-MM-DD/`` and ``latest``.

A snapshot holds ``tissu-open.db``, ``metadata.json`` and ``exports/``. Files are hard links to
the published files when the file system allows (published files are only ever replaced by
``os.replace``, never rewritten in place, so a link keeps the old bytes), copies otherwise; they
are made read-only.

Naming: the first publish of a day (UTC) writes ``snapshots/YYYY-MM-DD``; a later publish the
same day writes ``snapshots/YYYY-MM-DDTHHMMSSZ`` only when something changed (``changed``), so a
scheduler publishing every hour does not pile up identical copies. ``snapshots/latest`` is a
symbolic link to the newest snapshot, replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

SNAPSHOTS = "snapshots"
LATEST = "latest"


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    os.chmod(target, 0o444)


def snapshot_name(out_dir: Path, now: dt.datetime, changed: bool) -> str | None:
    """The name the next snapshot will take, or None when none is due (see module doc)."""
    root = out_dir / SNAPSHOTS
    name = now.astimezone(dt.UTC).strftime("%Y-%m-%d")
    if (root / name).exists():
        if not changed:
            return None
        name = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
        if (root / name).exists():
            return None
    return name


def write_snapshot(out_dir: Path, name: str,
                   names: tuple[str, ...] = ("tissu-open.db", "metadata.json", "exports"),
                   ) -> Path:
    """Copy the published files of ``out_dir`` into ``snapshots/<name>``; move ``latest``.

    Returns the snapshot folder. Raises FileExistsError when it exists already (immutable), and
    OSError when the folder is not writable.
    """
    root = out_dir / SNAPSHOTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():
        raise FileExistsError(f"instantané déjà écrit : {final}")
    temp = root / f".{name}.tmp"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    for entry in names:
        source = out_dir / entry
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    target = temp / entry / path.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(path, target)
        elif source.is_file():
            _link_or_copy(source, temp / entry)
    temp.rename(final)
    link = root / f".{LATEST}.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(name, target_is_directory=True)
    os.replace(link, root / LATEST)
    return final
