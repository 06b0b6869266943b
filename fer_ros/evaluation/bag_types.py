"""What the bag modules share: message-type names, errors, topic/message/damage records, rosbags type stores."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from fer_ros.util import paths

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES: tuple[str, ...] = (IMAGE, COMPRESSED_IMAGE)
STORAGES: tuple[str, ...] = ('sqlite3', 'mcap')
FER_MESSAGES: tuple[str, ...] = ('FaceExpression', 'FaceExpressionArray', 'HriCommand')
# Newest distro rosbags knows that matches this project's ROS 2 (sensor_msgs etc. are the same in all).
DEFAULT_STORE = Stores.ROS2_KILTED
STORAGE_SUFFIXES = {'.db3': 'sqlite3', '.mcap': 'mcap'}


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
    msg: Any             # rosbags message dataclass (fields as in the .msg), or CDR bytes if raw


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


def typestore_with(definitions: Iterable[tuple[str, str, str]]):
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
