"""Topic remapping as ``ros2 bag play --remap FROM:=TO`` does it: parsed once, applied to a bag's topics.

``wamdiff play``, ``replay``, ``eval`` and ``bench node`` take ``--remap FROM:=TO …`` (several allowed) so a
bag recorded on other names (``/sensing/camera/front/image_raw``, ``/localization/odometry``, …) reads as
the names the rig and the node expect.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence


def parse_remaps(items: Sequence[str] | None) -> dict[str, str]:
    """``["/a:=/b", …]`` -> ``{"/a": "/b"}``; ValueError naming the bad rule (no ``:=``, empty side,
    a source given twice)."""
    out: dict[str, str] = {}
    for item in items or ():
        src, sep, dst = str(item).partition(":=")
        src, dst = src.strip(), dst.strip()
        if not sep or not src or not dst:
            raise ValueError(f"remap {item!r}: expected FROM:=TO, e.g. /cameras/front/image:=/camera/image")
        if any(c.isspace() for c in src + dst):
            raise ValueError(f"remap {item!r}: topic names cannot contain spaces")
        if src in out:
            raise ValueError(f"remap {item!r}: {src} is remapped twice ({src}:={out[src]} already)")
        out[src] = dst
    return out


def add_remap_argument(parser: argparse.ArgumentParser, help_: str = "read bag topic FROM as topic TO") -> None:
    """``--remap FROM:=TO …`` (repeatable, several per flag), parsed later with :func:`parse_remaps`."""
    parser.add_argument(
        "--remap", nargs="+", action="extend", default=[], metavar="FROM:=TO", help=f"{help_} (as ros2 bag play)"
    )


def remap_topics(topics: Iterable[str], remaps: dict[str, str]) -> dict[str, str]:
    """Bag topic -> the name it is read as; ValueError when two topics would end up with one name."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for topic in topics:
        name = remaps.get(topic, topic)
        if name in seen:
            raise ValueError(f"remap: bag topics {seen[name]} and {topic} would both be read as {name}")
        out[topic], seen[name] = name, topic
    return out
