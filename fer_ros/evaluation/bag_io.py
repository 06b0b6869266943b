"""Read bags without ROS, through ``rosbags`` (pure Python); writing is ``bag_writer``.

Reads rosbag2 directories (sqlite3 or mcap storage), a bare ``.db3`` / ``.mcap`` file and ROS 1
``.bag`` files. Damaged recordings are read up to the damage instead of failing:

- a rosbag2 directory without ``metadata.yaml`` (the recorder was killed before closing) is read from
  its storage file directly;
- an mcap file without footer/summary (truncated) is read front to back with the ``mcap`` package,
  including the complete records of a cut-off chunk, and a truncated sqlite3 file from a copy cut to
  whole pages (``bag_recovery``);
- any error while iterating (corrupt page, undecodable record, message that does not deserialise)
  ends the iteration and is kept in ``BagReader.damage`` (what happened, where, how many messages
  were read), so callers evaluate the good part and say where it stopped.

Damaged ROS 1 bags are not recovered (rosbags needs their index; ``rosbag reindex`` repairs them).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from rosbags.highlevel import AnyReader

from fer_ros.evaluation.bag_recovery import McapStreamSource, SqliteRecoverySource
from fer_ros.evaluation.bag_types import (
    IMAGE_TYPES,
    STORAGE_SUFFIXES,
    BagError,
    BagMessage,
    Damage,
    TopicInfo,
    TopicNotFoundError,
    UnsupportedMessageTypeError,
    make_typestore,
)


class _AnyReaderSource:
    """The normal path: rosbags' AnyReader (rosbag2 directory, .db3, .mcap, ROS 1 .bag)."""

    def __init__(self, path: Path):
        self.reader = AnyReader([path], default_typestore=make_typestore())
        self.reader.open()
        self._ros2_store = None
        self.storage = self._storage_name(path)
        self.topics = {name: TopicInfo(name, info.msgtype or '?', info.msgcount)
                       for name, info in self.reader.topics.items()}
        self.start_ns = self.reader.start_time if self.reader.message_count else None

    def _storage_name(self, path: Path) -> str:
        if not self.reader.is2:
            return 'ros1'
        if path.suffix in STORAGE_SUFFIXES:
            return STORAGE_SUFFIXES[path.suffix]
        meta = path / 'metadata.yaml'
        text = meta.read_text() if meta.is_file() else ''
        return 'mcap' if 'storage_identifier: mcap' in text else 'sqlite3'

    def iter_raw(self, topics: set[str]):
        conns = [c for c in self.reader.connections if c.topic in topics]
        if not conns:      # AnyReader.messages([]) would mean "every topic"
            return
        for conn, log_ns, data in self.reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, log_ns, data

    @property
    def typestore(self):
        """Store for CDR bytes from ``to_cdr`` (ROS 2 layouts, also for ROS 1 bags)."""
        if self.reader.is2:
            return self.reader.typestore
        if self._ros2_store is None:
            self._ros2_store = make_typestore()
        return self._ros2_store

    def deserialize(self, raw: bytes, msgtype: str):
        return self.reader.deserialize(raw, msgtype)

    def to_cdr(self, raw: bytes, msgtype: str) -> bytes:
        if self.reader.is2:
            return raw
        # ROS 1 layouts differ (Header.seq): rebuild the message with the ROS 2 definitions.
        ros1 = self.reader.deserialize(raw, msgtype)
        return self.typestore.serialize_cdr(_to_store(ros1, self.typestore), msgtype)

    def close(self) -> None:
        self.reader.close()


def _to_store(msg, store):
    """A rosbags message rebuilt with ``store``'s class of the same name; fields that class lacks
    (ROS 1 Header.seq) are dropped."""
    cls = store.types[msg.__msgtype__]
    values = {}
    for name in cls.__dataclass_fields__:
        if name == '__msgtype__':
            continue
        value = getattr(msg, name)
        if hasattr(value, '__msgtype__'):
            value = _to_store(value, store)
        elif isinstance(value, list) and value and hasattr(value[0], '__msgtype__'):
            value = [_to_store(v, store) for v in value]
        values[name] = value
    return cls(**values)


class BagReader:
    """A bag opened for reading; use as a context manager.

    Attributes:
        path: what was given. storage: 'sqlite3', 'mcap' or 'ros1'. topics: name -> TopicInfo.
        start_ns: log time of the earliest message (None for an empty bag).
        warnings: things the user should know (recovered bag, missing metadata), in order.
        damage: set when an iteration stopped early (see Damage); None otherwise.

    Raises (constructor):
        BagError: the path does not exist or is not a bag, or the bag does not open at all.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.warnings: list[str] = []
        self.damage: Damage | None = None
        self._recovery_reason = ''
        self._source = self._open()
        self.storage: str = self._source.storage
        self.topics: dict[str, TopicInfo] = self._source.topics
        self.start_ns: int | None = self._source.start_ns

    def _storage_target(self) -> Path:
        path = self.path
        if not path.exists():
            raise BagError(f'{path}: no such file or directory')
        if path.is_file():
            if path.suffix not in ('.db3', '.mcap', '.bag'):
                raise BagError(f'{path}: not a bag (expected a rosbag2 directory, a .db3 or .mcap file, '
                               'or a ROS 1 .bag file)')
            return path
        if (path / 'metadata.yaml').is_file():
            return path
        files = sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES)
        if not files:
            raise BagError(f'{path}: not a rosbag2 directory (no metadata.yaml, no .db3 or .mcap file)')
        if len(files) > 1:
            raise BagError(f'{path}: no metadata.yaml and several storage files '
                           f'({", ".join(p.name for p in files)}); pass one of them')
        self.warnings.append(f'{path}: metadata.yaml is missing (recording not closed cleanly?); '
                             f'reading {files[0].name} directly')
        return files[0]

    def _open(self):
        target = self._storage_target()
        try:
            return _AnyReaderSource(target)
        except Exception as exc:  # noqa: BLE001 - rosbags raises many types for a bad file
            first_error = f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__
        storage_file = self._single_storage_file(target)
        if storage_file is None:
            raise BagError(f'{self.path}: cannot open bag: {first_error}')
        try:
            source = (McapStreamSource(storage_file) if storage_file.suffix == '.mcap'
                      else SqliteRecoverySource(storage_file))
        except Exception as exc:  # noqa: BLE001
            raise BagError(f'{self.path}: cannot open bag: {first_error} (recovery also failed: {exc})') from None
        self._recovery_reason = source.damage_reason or first_error
        self.warnings.append(f'{self.path}: bag did not open normally ({first_error}); '
                             f'reading {storage_file.name} record by record up to the damage')
        return source

    @staticmethod
    def _single_storage_file(target: Path) -> Path | None:
        if target.is_file():
            return target if target.suffix in STORAGE_SUFFIXES else None
        files = sorted(p for p in target.iterdir() if p.suffix in STORAGE_SUFFIXES)
        return files[0] if len(files) == 1 else None

    # -- topics ------------------------------------------------------------------------------

    def describe_topics(self) -> str:
        if not self.topics:
            return '(the bag has no topics)'
        return '\n'.join(f'  {t.name}  [{t.msgtype}]  {t.count if t.count is not None else "?"} messages'
                         for t in sorted(self.topics.values(), key=lambda t: t.name))

    def require_topic(self, topic: str, msgtypes: tuple[str, ...] = IMAGE_TYPES) -> TopicInfo:
        """The topic's info, checked to exist and to hold one of ``msgtypes``.

        Raises:
            TopicNotFoundError: not in the bag (the text lists the bag's topics).
            UnsupportedMessageTypeError: another message type (the text names the supported ones).
        """
        info = self.topics.get(topic)
        if info is None:
            raise TopicNotFoundError(f'{self.path}: topic {topic!r} is not in the bag. Topics in the bag:\n'
                                     + self.describe_topics())
        if info.msgtype not in msgtypes:
            raise UnsupportedMessageTypeError(
                f'{self.path}: topic {topic!r} holds {info.msgtype}, which is not supported here; '
                f'supported: {", ".join(msgtypes)}. Topics in the bag:\n' + self.describe_topics())
        return info

    # -- messages ----------------------------------------------------------------------------

    def messages(self, topics: Iterable[str], deserialize: bool = True) -> Iterator[BagMessage]:
        """Messages of ``topics`` in storage order (time order for healthy bags).

        ``deserialize=False`` yields CDR bytes in ``msg`` (ROS 1 data converted), for republishing.
        Stops at the first damage and sets ``self.damage``; never raises for a damaged bag.
        """
        wanted = set(topics)
        count, last = 0, None
        iterator = self._source.iter_raw(wanted)
        while True:
            try:
                topic, msgtype, log_ns, raw = next(iterator)
                msg = self._source.deserialize(raw, msgtype) if deserialize else self._source.to_cdr(raw, msgtype)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - any reader failure is damage to report, not a crash
                reason = str(exc) or type(exc).__name__
                self.damage = Damage(reason, count, last)
                return
            count += 1
            last = log_ns
            yield BagMessage(topic, msgtype, log_ns, msg)
        if self._recovery_reason:
            # The recovered part ended where the file is damaged: that is still damage to report.
            self.damage = Damage(self._recovery_reason, count, last)

    def deserialize(self, data: bytes, msgtype: str):
        """CDR bytes from ``messages(deserialize=False)`` -> message object."""
        return self._source.typestore.deserialize_cdr(data, msgtype)

    def serialize(self, msg, msgtype: str) -> bytes:
        """Message object (from ``messages()``) -> CDR bytes, for republishing."""
        return bytes(self._source.typestore.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Stamps

def stamp_ns(msg) -> int:
    """header.stamp of a message as integer nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


