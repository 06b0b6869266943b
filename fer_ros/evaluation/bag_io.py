"""Read and write bags without ROS, through ``rosbags`` (pure Python).

Reads rosbag2 directories (sqlite3 or mcap storage), a bare ``.db3`` / ``.mcap`` file and ROS 1
``.bag`` files. Damaged recordings are read up to the damage instead of failing:

- a rosbag2 directory without ``metadata.yaml`` (the recorder was killed before closing) is read from
  its storage file directly;
- an mcap file without footer/summary (truncated) is scanned record by record from the start, including
  the readable part of a cut-off chunk;
- a truncated sqlite3 file is read from a temporary copy whose header is patched to the pages present;
- any error while iterating (corrupt page, undecodable record, message that does not deserialise)
  ends the iteration and is kept in ``BagReader.damage`` (what happened, where, how many messages
  were read), so callers evaluate the good part and say where it stopped.

Damaged ROS 1 bags are not recovered (rosbags needs their index; ``rosbag reindex`` repairs them).
"""
from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from fer_ros.core import paths
from fer_ros.core.image_codec import (DEFAULT_MAX_PIXELS, decode_compressed, decode_image, encode_compressed,
                                      encode_image)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES: tuple[str, ...] = (IMAGE, COMPRESSED_IMAGE)
STORAGES: tuple[str, ...] = ('sqlite3', 'mcap')
FER_MESSAGES: tuple[str, ...] = ('FaceExpression', 'FaceExpressionArray', 'HriCommand')
# Newest distro rosbags knows that matches this project's ROS 2 (sensor_msgs etc. are the same in all).
DEFAULT_STORE = Stores.ROS2_KILTED
_STORAGE_SUFFIXES = {'.db3': 'sqlite3', '.mcap': 'mcap'}


class BagError(RuntimeError):
    """The bag cannot be used; the text names the bag and what is wrong (shown to users as is)."""


class TopicNotFoundError(BagError):
    """The requested topic is not in the bag; the text lists the topics that exist."""


class UnsupportedMessageTypeError(BagError):
    """The topic holds a message type this tool cannot read."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int | None   # None: unknown (damaged bag whose index could not be read)


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int          # time the recorder stored the message (ns since the epoch)
    msg: object          # rosbags message dataclass (fields as in the .msg), or CDR bytes if raw


@dataclass(frozen=True)
class Damage:
    """Where reading stopped early."""

    reason: str
    messages_read: int          # messages of the requested topics delivered before the damage
    last_log_ns: int | None     # log time of the last good message, None if none was read

    def describe(self, start_ns: int | None = None) -> str:
        if self.last_log_ns is None:
            where = 'before the first message'
        elif start_ns is not None:
            where = f'after message {self.messages_read} (t = {(self.last_log_ns - start_ns) * 1e-9:.3f} s)'
        else:
            where = f'after message {self.messages_read} (log time {self.last_log_ns} ns)'
        return f'bag damaged: reading stopped {where}: {self.reason}'


# ---------------------------------------------------------------------------------------------
# Type store

def fer_message_types() -> dict:
    """rosbags type definitions of fer_ros/msg/* read from the package's msg/*.msg files.

    Raises:
        FileNotFoundError: the .msg files are neither in the source checkout nor an ament prefix.
    """
    types: dict = {}
    for name in FER_MESSAGES:
        text = Path(paths.find_package_file('msg', f'{name}.msg')).read_text()
        types.update(get_types_from_msg(text, f'fer_ros/msg/{name}'))
    return types


def make_typestore(require_fer: bool = False):
    """A rosbags Typestore with the ROS 2 standard messages plus fer_ros's own messages.

    The fer_ros types come from the package's msg/*.msg; where those are not installed (a plain pip
    install) they are left out unless ``require_fer`` (bags carry their own definitions anyway).

    Raises:
        FileNotFoundError: ``require_fer`` and the .msg files are not found.
    """
    store = get_typestore(DEFAULT_STORE)
    try:
        store.register(fer_message_types())
    except FileNotFoundError:
        if require_fer:
            raise
    return store


def _typestore_with(definitions: Iterable[tuple[str, str, str]]):
    """Default store plus the definitions a bag carries: (msgtype, encoding 'ros2msg'|'ros2idl', text)."""
    store = make_typestore()
    types: dict = {}
    for msgtype, encoding, text in definitions:
        if not text:
            continue
        if encoding == 'ros2msg':
            types.update(get_types_from_msg(text, msgtype))
        elif encoding == 'ros2idl':
            # rosbag2 stores the IDL of a type and its dependencies as sections headed "IDL: <name>".
            sep = '=' * 80 + '\n'
            sections = [s.split('\n', 1)[1] for s in text.split(sep)[1:]] if text.startswith(sep) else [text]
            for idl in sections:
                types.update(get_types_from_idl(idl))
    # Definitions the default store already has are identical in practice; registering them again
    # would raise on harmless formatting differences, so only new types are added.
    new = {k: v for k, v in types.items() if k not in store.fielddefs}
    if new:
        store.register(new)
    return store


# ---------------------------------------------------------------------------------------------
# Storage back ends: each yields (topic, msgtype, log_ns, raw bytes) and may raise on damage.

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
        if path.suffix in _STORAGE_SUFFIXES:
            return _STORAGE_SUFFIXES[path.suffix]
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


class _McapTruncated(Exception):
    pass


def _mcap_string(content: memoryview, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from('<I', content, pos)
    if pos + 4 + size > len(content):
        raise _McapTruncated('string field runs past the end of its record')
    return bytes(content[pos + 4:pos + 4 + size]).decode(), pos + 4 + size


def _decompress_partial(compression: str, data: bytes) -> bytes:
    """Decompress as much of a (possibly cut-off) chunk as possible."""
    if compression == '':
        return data
    if compression == 'zstd':
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd
        try:
            return zstd.ZstdDecompressor().decompress(data)
        except zstd.ZstdError:
            return b''
    if compression == 'lz4':
        import lz4.frame
        try:
            return lz4.frame.LZ4FrameDecompressor().decompress(data)
        except RuntimeError:
            return b''
    raise _McapTruncated(f'unsupported chunk compression {compression!r}')


class _McapScanSource:
    """Record-by-record reader for an mcap file whose footer/summary is missing or broken (MCAP spec,
    ros2 profile): every complete record from the start, plus the readable part of a cut-off chunk.

    Messages come in file order (the order they were recorded). The file is memory-mapped, so a large
    recording is not read into memory.
    """

    def __init__(self, path: Path):
        self.storage = 'mcap'
        if path.stat().st_size < 8:
            raise _McapTruncated('not an mcap file (shorter than its magic bytes)')
        self._file = open(path, 'rb')
        self.data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        if self.data[:8] != b'\x89MCAP0\r\n':
            self.close()
            raise _McapTruncated('not an mcap file (magic bytes missing)')
        self.schemas: dict[int, tuple[str, str, str]] = {}
        self.channels: dict[int, tuple[str, str]] = {}     # id -> (topic, msgtype)
        counts: dict[int, int] = {}
        self.start_ns = None
        self.damage_reason = ''
        try:
            for channel_id, log_ns, _ in self._messages():
                counts[channel_id] = counts.get(channel_id, 0) + 1
                self.start_ns = log_ns if self.start_ns is None else min(self.start_ns, log_ns)
        except (_McapTruncated, struct.error, UnicodeDecodeError) as exc:
            self.damage_reason = str(exc)
        self.topics = {topic: TopicInfo(topic, msgtype, counts.get(cid, 0))
                       for cid, (topic, msgtype) in self.channels.items()}
        self.typestore = _typestore_with(self.schemas.values())

    def _messages(self) -> Iterator[tuple[int, int, memoryview]]:
        """(channel id, log time ns, CDR bytes) in file order; raises _McapTruncated at the damage."""
        data, view = self.data, memoryview(self.data)
        pos, end = 8, len(self.data)
        while pos < end:
            if end - pos < 9:
                raise _McapTruncated(f'record header cut off at byte {pos} of {end}')
            opcode = data[pos]
            (length,) = struct.unpack_from('<Q', data, pos + 1)
            body_end = pos + 9 + length
            if body_end > end:
                if opcode == 0x06:
                    yield from self._chunk(view[pos + 9:end], pos, partial=True)
                raise _McapTruncated(f'record 0x{opcode:02x} of {length} bytes at byte {pos} is cut off '
                                     f'(file ends at byte {end})')
            if opcode == 0x0F:   # DataEnd: the summary section follows
                return
            yield from self._record(opcode, view[pos + 9:body_end], pos, nested=False)
            pos = body_end

    def _record(self, opcode: int, content: memoryview, offset: int, nested: bool):
        if opcode == 0x03:           # Schema: id, name, encoding, data
            (sid,) = struct.unpack_from('<H', content, 0)
            name, pos = _mcap_string(content, 2)
            encoding, pos = _mcap_string(content, pos)
            (size,) = struct.unpack_from('<I', content, pos)
            self.schemas[sid] = (name, encoding, bytes(content[pos + 4:pos + 4 + size]).decode())
        elif opcode == 0x04:         # Channel: id, schema id, topic, ...
            cid, sid = struct.unpack_from('<HH', content, 0)
            topic, _ = _mcap_string(content, 4)
            self.channels[cid] = (topic, self.schemas.get(sid, ('?', '', ''))[0])
        elif opcode == 0x05:         # Message: channel id, sequence, log time, publish time, data
            if len(content) < 22:
                raise _McapTruncated(f'message record at byte {offset} is too short')
            cid, _, log_ns, _ = struct.unpack_from('<HIQQ', content, 0)
            if cid not in self.channels:
                raise _McapTruncated(f'message at byte {offset} names unknown channel {cid}')
            yield cid, log_ns, content[22:]
        elif opcode == 0x06 and not nested:
            yield from self._chunk(content, offset, partial=False)

    def _chunk(self, content: memoryview, offset: int, partial: bool):
        """Records of a chunk (start, end, uncompressed size, crc, compression, records); a cut-off
        chunk (partial) yields its complete leading records."""
        if len(content) < 36:
            return
        compression, pos = _mcap_string(content, 28)
        if pos + 8 > len(content):
            return
        (size,) = struct.unpack_from('<Q', content, pos)
        records = _decompress_partial(compression, bytes(content[pos + 8:pos + 8 + size]))
        view, inner = memoryview(records), 0
        while inner + 9 <= len(records):
            opcode = records[inner]
            (length,) = struct.unpack_from('<Q', records, inner + 1)
            if inner + 9 + length > len(records):
                break
            yield from self._record(opcode, view[inner + 9:inner + 9 + length], offset, nested=True)
            inner += 9 + length
        if inner != len(records) and not partial:
            raise _McapTruncated(f'chunk at byte {offset} is corrupt')

    def iter_raw(self, topics: set[str]):
        for cid, log_ns, data in self._messages():
            topic, msgtype = self.channels[cid]
            if topic in topics:
                yield topic, msgtype, log_ns, bytes(data)

    def deserialize(self, raw: bytes, msgtype: str):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def to_cdr(self, raw: bytes, msgtype: str) -> bytes:
        return raw

    def close(self) -> None:
        try:
            self.data.close()
        except BufferError:   # a suspended message generator still holds a view; freed with it
            pass
        self._file.close()


class _SqliteRecoverySource:
    """Reads a truncated or partly corrupt rosbag2 sqlite3 file from a patched temporary copy.

    SQLite refuses a file shorter than the page count in its header; the copy is cut to whole pages
    and its header says how many there are, so every intact page (and the rows on it) is readable.
    """

    def __init__(self, path: Path):
        self.storage = 'sqlite3'
        with open(path, 'rb') as f:
            header = f.read(100)
        if not header.startswith(b'SQLite format 3\x00'):
            raise BagError(f'{path}: not an SQLite database')
        (page_size,) = struct.unpack_from('>H', header, 16)
        page_size = 65536 if page_size == 1 else page_size
        self._tmp = tempfile.TemporaryDirectory(prefix='fer_bag_recovery_')
        copy = Path(self._tmp.name) / path.name
        shutil.copyfile(path, copy)
        pages = os.path.getsize(copy) // page_size
        with open(copy, 'r+b') as f:
            f.truncate(pages * page_size)
            f.seek(28)
            f.write(struct.pack('>I', pages))
        self.db = sqlite3.connect(f'file:{copy}?immutable=1', uri=True)
        rows = self.db.execute('SELECT id, name, type FROM topics ORDER BY id').fetchall()
        self._topic_of = {tid: (name, msgtype) for tid, name, msgtype in rows}
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        definitions = []
        if 'message_definitions' in tables:
            definitions = self.db.execute('SELECT topic_type, encoding, encoded_message_definition '
                                          'FROM message_definitions').fetchall()
        self.typestore = _typestore_with(definitions)
        counts: dict[int, int] = {}
        self.start_ns = None
        self.damage_reason = ''
        try:
            for tid, log_ns in self.db.execute('SELECT topic_id, timestamp FROM messages ORDER BY id'):
                counts[tid] = counts.get(tid, 0) + 1
                self.start_ns = log_ns if self.start_ns is None else min(self.start_ns, log_ns)
        except sqlite3.DatabaseError as exc:
            self.damage_reason = f'sqlite: {exc}'
        self.topics = {name: TopicInfo(name, msgtype, counts.get(tid, 0))
                       for tid, (name, msgtype) in self._topic_of.items()}

    def iter_raw(self, topics: set[str]):
        ids = [tid for tid, (name, _) in self._topic_of.items() if name in topics]
        if not ids:
            return
        query = (f'SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN '
                 f'({",".join("?" * len(ids))}) ORDER BY id')
        try:
            for tid, log_ns, data in self.db.execute(query, ids):
                name, msgtype = self._topic_of[tid]
                yield name, msgtype, log_ns, data
        except sqlite3.DatabaseError as exc:
            raise BagError(f'sqlite: {exc}') from None

    def deserialize(self, raw: bytes, msgtype: str):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def to_cdr(self, raw: bytes, msgtype: str) -> bytes:
        return raw

    def close(self) -> None:
        self.db.close()
        self._tmp.cleanup()


# ---------------------------------------------------------------------------------------------

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
        files = sorted(p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIXES)
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
            source = (_McapScanSource(storage_file) if storage_file.suffix == '.mcap'
                      else _SqliteRecoverySource(storage_file))
        except Exception as exc:  # noqa: BLE001
            raise BagError(f'{self.path}: cannot open bag: {first_error} (recovery also failed: {exc})') from None
        self._recovery_reason = source.damage_reason or first_error
        self.warnings.append(f'{self.path}: bag did not open normally ({first_error}); '
                             f'reading {storage_file.name} record by record up to the damage')
        return source

    @staticmethod
    def _single_storage_file(target: Path) -> Path | None:
        if target.is_file():
            return target if target.suffix in _STORAGE_SUFFIXES else None
        files = sorted(p for p in target.iterdir() if p.suffix in _STORAGE_SUFFIXES)
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
# Writing

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
        self._connections: dict[str, tuple[object, str]] = {}

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


# ---------------------------------------------------------------------------------------------
# Image messages

def stamp_ns(msg) -> int:
    """header.stamp of a message as integer nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def decode_image_message(msgtype: str, msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image or CompressedImage message object -> uint8[H, W, 3] BGR.

    Raises:
        fer_ros.core.image_codec.ImageDecodeError: the message does not decode (text says why).
    """
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed(msg.format, msg.data, max_pixels=max_pixels)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian,
                        max_pixels=max_pixels)


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


__all__ = ['BagError', 'TopicNotFoundError', 'UnsupportedMessageTypeError', 'TopicInfo', 'BagMessage',
           'Damage', 'BagReader', 'BagWriter', 'make_typestore', 'fer_message_types', 'stamp_ns',
           'decode_image_message', 'image_message', 'IMAGE', 'COMPRESSED_IMAGE', 'IMAGE_TYPES', 'STORAGES']
