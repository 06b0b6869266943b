"""Writing rosbag2 bags (sqlite3 or mcap) with rosbags, and image messages for them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer

from fer_ros.evaluation.bag_types import COMPRESSED_IMAGE, IMAGE, STORAGES, BagError, make_typestore
from fer_ros.io.image_codec import encode_compressed, encode_image


class BagWriter:
    """Writes a rosbag2 (sqlite3 or mcap) with rosbags; use as a context manager.

    Raises (constructor):
        ValueError: unknown ``storage``.
        BagError: ``path`` exists already.
    """

    def __init__(self, path: str | os.PathLike, storage: str = 'mcap', typestore=None):
        if storage not in STORAGES:
            raise ValueError(f'storage must be one of {STORAGES}, got {storage!r}')
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} exists already; choose another output path or delete it')
        self.storage = storage
        self.typestore = typestore if typestore is not None else make_typestore()
        plugin = StoragePlugin.SQLITE3 if storage == 'sqlite3' else StoragePlugin.MCAP
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._connections: dict[str, tuple[Connection, str]] = {}

    def __enter__(self) -> BagWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Always close: a partial recording (error, Ctrl-C) is still a valid bag of what was written.
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic not in self._connections:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = (conn, msgtype)

    def write(self, topic: str, log_ns: int, msg) -> None:
        """Serialise a rosbags message object (its type is the topic's type) and store it."""
        conn, msgtype = self._connections[topic]
        self._writer.write(conn, int(log_ns), self.typestore.serialize_cdr(msg, msgtype))

    def write_cdr(self, topic: str, log_ns: int, data: bytes) -> None:
        conn, _ = self._connections[topic]
        self._writer.write(conn, int(log_ns), data)


def image_message(typestore, bgr: np.ndarray, stamp: int, frame_id: str, fmt: str = 'raw',
                  encoding: str = 'bgr8', quality: int = 90) -> tuple[str, object]:
    """uint8[H, W, 3] BGR -> (msgtype, rosbags Image or CompressedImage message) stamped ``stamp`` ns.

    fmt: 'raw' (sensor_msgs/Image in ``encoding``) or 'compressed' (JPEG at ``quality``).
    """
    header = typestore.types['std_msgs/msg/Header'](
        stamp=typestore.types['builtin_interfaces/msg/Time'](sec=stamp // 1_000_000_000,
                                                             nanosec=stamp % 1_000_000_000),
        frame_id=frame_id)
    if fmt == 'compressed':
        form, data = encode_compressed(bgr, 'jpeg', quality)
        return COMPRESSED_IMAGE, typestore.types[COMPRESSED_IMAGE](
            header=header, format=form, data=np.frombuffer(data, dtype=np.uint8))
    if fmt != 'raw':
        raise ValueError(f"fmt must be 'raw' or 'compressed', got {fmt!r}")
    enc, height, width, step, data, big = encode_image(bgr, encoding)
    return IMAGE, typestore.types[IMAGE](header=header, height=height, width=width, encoding=enc,
                                         is_bigendian=big, step=step, data=np.frombuffer(data, dtype=np.uint8))
