"""Finding dataset folders below a root, through symlinked folders.

data/README.md suggests symlinks for keeping large sets elsewhere (a benchmark root whose set
folders are links into other storage), and ``Path.rglob`` does not enter symlinked folders, so
such sets went unfound. ``os.walk(followlinks=True)`` enters them; a set of resolved real paths
visits each real folder once, so a link that points back up the tree cannot loop forever.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def folders_holding(root: str | Path, names: Sequence[str]) -> list[Path]:
    """Folders at or below ``root`` holding a file named one of ``names``, sorted.

    Paths are given as walked (through the links, so a set keeps its link's name); a real
    folder reached twice, by two links or a cycle, is reported once, under the first path
    met in sorted order.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for folder, dirs, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()  # a cycle or a second link to a folder already walked
            continue
        seen.add(real)
        dirs.sort()  # walk order, hence which of two links to one folder wins, is fixed
        if any((Path(folder) / name).is_file() for name in names):
            found.append(Path(folder))
    return sorted(found)
