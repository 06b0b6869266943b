"""fer-make-bag: build an evaluation bag (rosbag2, sqlite3 or mcap) from a video file, an image folder, a
webcam, or the repository's built-in sample, without ROS.

    fer-make-bag --video clip.mp4 --out my_bag
    fer-make-bag --images frames/ --rate 15 --format compressed --storage sqlite3 --out my_bag
    fer-make-bag --device 0 --max-frames 150 --out webcam_bag
    fer-make-bag --sample --out sample_bag --labels-out sample_labels.csv

Frames are stamped start + i / rate (video, images, sample) or with the capture time (webcam); the
header stamp and the bag's log time are equal. Unreadable image files are skipped with a message and
make the command exit with status 1 after writing the bag of the good ones.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.evaluation.bag_types import STORAGES, BagError
from fer_ros.evaluation.bag_writer import BagWriter, image_message
from fer_ros.io.files import IMAGE_SUFFIXES, read_image
from fer_ros.io.image_codec import DEFAULT_MAX_PIXELS

RAW_ENCODINGS = ('bgr8', 'rgb8', 'mono8')
DEFAULT_TOPIC = '/camera/image_raw'
# The built-in sample starts at a fixed time so `--sample` always writes the same bag.
SAMPLE_START_NS = 1_700_000_000 * 1_000_000_000
SAMPLE_RATE_HZ = 4.0


class MakeBagError(RuntimeError):
    """A source cannot be used; the text names it."""


def default_topic(fmt: str) -> str:
    return DEFAULT_TOPIC + ('/compressed' if fmt == 'compressed' else '')


def write_bag(frames: Iterable[tuple[np.ndarray, int | None]], out: str | Path, *, storage: str = 'mcap',
              fmt: str = 'raw', rate: float = 10.0, frame_id: str = 'camera', topic: str | None = None,
              encoding: str = 'bgr8', quality: int = 90, start_ns: int | None = None, total: int | None = None,
              progress: bool = True) -> int:
    """Write frames to a new bag; returns how many were written.

    frames: (uint8[H, W, 3] BGR, stamp ns or None) pairs; None stamps become start_ns + i / rate.
    Raises:
        ValueError: bad rate / fmt / encoding / quality (names the parameter).
        BagError: ``out`` exists.
    """
    if not rate > 0:
        raise ValueError(f'rate must be > 0 Hz, got {rate}')
    if fmt not in ('raw', 'compressed'):
        raise ValueError(f"format must be 'raw' or 'compressed', got {fmt!r}")
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f'encoding must be one of {RAW_ENCODINGS}, got {encoding!r}')
    if not 1 <= quality <= 100:
        raise ValueError(f'quality must be in 1..100, got {quality}')
    from tqdm import tqdm

    topic = topic or default_topic(fmt)
    start_ns = time.time_ns() if start_ns is None else int(start_ns)
    period_ns = 1e9 / rate
    count = 0
    with BagWriter(out, storage) as writer:
        bar = tqdm(total=total, unit='frame', desc=f'writing {Path(out).name}', disable=not progress)
        try:
            for i, (bgr, stamp) in enumerate(frames):
                stamp = start_ns + round(i * period_ns) if stamp is None else int(stamp)
                msgtype, msg = image_message(writer.typestore, bgr, stamp, frame_id, fmt, encoding, quality)
                if count == 0:
                    writer.add_topic(topic, msgtype)
                writer.write(topic, stamp, msg)
                count += 1
                bar.update()
        except KeyboardInterrupt:
            print(f'\ninterrupted: keeping the {count} frames written so far', file=sys.stderr)
        finally:
            bar.close()
    return count


# --------------------------------------------------------------------------- sources

def video_frames(path: str, max_frames: int | None = None) \
        -> tuple[Iterator[tuple[np.ndarray, None]], float, int | None]:
    """(frames, the video's frame rate or 0 when unknown, frame count or None) of a video file.

    Raises:
        MakeBagError: the file is missing or does not open as a video.
    """
    if not Path(path).is_file():
        raise MakeBagError(f'{path}: no such video file')
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise MakeBagError(f'{path}: cannot open as a video (OpenCV/FFmpeg could not read it)')
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    if max_frames is not None and count is not None:
        count = min(count, max_frames)

    def gen():
        try:
            n = 0
            while max_frames is None or n < max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                n += 1
                yield frame, None
        finally:
            cap.release()
    return gen(), (fps if 0 < fps < 1000 else 0.0), count


@dataclass
class SkippedFiles:
    files: list[str]


def image_folder_frames(folder: str, skipped: SkippedFiles, max_frames: int | None = None,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Iterator[tuple[np.ndarray, None]], int]:
    """Frames of the image files in ``folder`` in name order; unreadable files are reported on stderr
    and appended to ``skipped.files``.

    Raises:
        MakeBagError: not a folder, or it has no image files.
    """
    path = Path(folder)
    if not path.is_dir():
        raise MakeBagError(f'{folder}: no such image folder')
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise MakeBagError(f'{folder}: no image files ({", ".join(IMAGE_SUFFIXES)})')
    files = files[:max_frames] if max_frames else files

    def gen():
        for f in files:
            try:     # PNG/JPEG size checked from the header first: a decompression bomb is skipped
                image = read_image(str(f), max_pixels)
            except ValueError as exc:
                print(f'fer-make-bag: {f}: {exc}; skipped', file=sys.stderr)
                skipped.files.append(str(f))
                continue
            yield image, None
    return gen(), len(files)


def device_frames(device: int, max_frames: int, rate: float) -> Iterator[tuple[np.ndarray, int]]:
    """Frames from a camera device, stamped with the capture time, paced to ``rate`` Hz.

    Raises:
        MakeBagError: the device does not open or delivers no frame.
    """
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        raise MakeBagError(f'camera device {device} does not open (is it connected, and not in use?)')
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise MakeBagError(f'camera device {device} opened but delivered no frame')

    def gen():
        try:
            period = 1.0 / rate
            next_t = time.monotonic()
            frame, n = first, 0
            while n < max_frames:
                yield frame, time.time_ns()
                n += 1
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
                ok, frame = cap.read()
                if not ok:
                    print(f'fer-make-bag: camera device {device} stopped delivering frames after {n}',
                          file=sys.stderr)
                    break
        finally:
            cap.release()
    return gen()


# --------------------------------------------------------------------------- built-in sample

@dataclass(frozen=True)
class SampleSegment:
    """A stretch of the built-in sample: which repository faces are in view, and its honest label."""

    frames: int
    faces: tuple[str, ...]      # names from fer_ros.sample_frames.FACE_SOURCES ('astronaut.jpg', ...)
    label: str                  # what a person would say every face shows; '' = not labelled
    note: str


# The empty stretch outlasts the tracker's default 5 missed frames, so the next person gets a new id.
SAMPLE_SEGMENTS: tuple[SampleSegment, ...] = (
    SampleSegment(10, ('astronaut.jpg',), 'happy', 'the astronaut (Eileen Collins) smiling into the camera'),
    SampleSegment(6, (), '', 'empty scene (coffee cup photo), no face'),
    SampleSegment(10, ('camera.jpg',), 'neutral', 'the cameraman, calm face in three-quarter profile'),
    SampleSegment(8, ('astronaut.jpg', 'camera.jpg'), '',
                  'both people at once; their expressions differ, so no frame-wide label'),
)


def sample_sequence(size: tuple[int, int] = (640, 480)) -> Iterator[tuple[np.ndarray, SampleSegment]]:
    """Frames of the built-in sample (deterministic): the repository's face photos pasted on its
    face-free photo, drifting slowly so the tracker follows them; yields (BGR frame, segment)."""
    from fer_ros.sample_frames import FACE_SOURCES, background, paste_face

    sources = {s.image: s for s in FACE_SOURCES}
    width, height = size
    base = background(size)
    for segment in SAMPLE_SEGMENTS:
        slots = len(segment.faces)
        for i in range(segment.frames):
            frame = base.copy()
            for k, name in enumerate(segment.faces):
                cx = width * (k + 0.5) / slots + 3.0 * i - 1.5 * segment.frames
                cy = height * 0.5 + 8.0 * np.sin(i / 3.0)
                paste_face(frame, sources[name], (cx, cy), face_height=0.36 * height, mirror=False)
            yield frame, segment


def sample_labels_csv(rate: float = SAMPLE_RATE_HZ) -> str:
    """Labels CSV text of the built-in sample (time ranges relative to the bag start)."""
    lines = ['# Labels of the fer-make-bag --sample bag: seconds from the bag start, [start_s, end_s).',
             'start_s,end_s,expression']
    t = 0.0
    for segment in SAMPLE_SEGMENTS:
        end = t + segment.frames / rate
        lines.append(f'# {t:g}-{end:g} s: {segment.note}' + ('' if segment.label else ' (not labelled)'))
        if segment.label:
            lines.append(f'{t:g},{end:g},{segment.label}')
        t = end
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='fer-make-bag', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--video', metavar='FILE', help='video file (anything OpenCV/FFmpeg reads)')
    src.add_argument('--images', metavar='DIR', help='folder of images, used in file-name order')
    src.add_argument('--device', metavar='N', type=int, help='camera device index (e.g. 0 for /dev/video0)')
    src.add_argument('--sample', action='store_true',
                     help="the repository's built-in sample (its face photos; see assets/sample_bag/README.md)")
    p.add_argument('--out', required=True, metavar='BAG', help='output bag directory (must not exist)')
    p.add_argument('--storage', choices=STORAGES, default='mcap', help='rosbag2 storage format (default mcap)')
    p.add_argument('--format', dest='fmt', choices=('raw', 'compressed'), default=None,
                   help='sensor_msgs/Image (raw) or CompressedImage JPEG (compressed); default raw, '
                        'compressed for --sample')
    p.add_argument('--rate', type=float, default=None, metavar='HZ',
                   help='frame rate of the stamps (default: the video\'s rate, 4 for --sample, else 10); '
                        'for --device the capture rate')
    p.add_argument('--frame-id', default='camera', help='header.frame_id (default camera)')
    p.add_argument('--topic', default=None, help=f'topic name (default {DEFAULT_TOPIC}, '
                                                  f'{DEFAULT_TOPIC}/compressed for compressed)')
    p.add_argument('--encoding', choices=RAW_ENCODINGS, default='bgr8', help='raw image encoding (default bgr8)')
    p.add_argument('--quality', type=int, default=None, help='JPEG quality 1..100 (default 90, 70 for --sample)')
    p.add_argument('--max-frames', type=int, default=None, metavar='N',
                   help='stop after N frames (default: all; 100 for --device)')
    p.add_argument('--start-time', type=float, default=None, metavar='SEC',
                   help='stamp of the first frame, seconds since the epoch (default now; fixed for --sample)')
    p.add_argument('--labels-out', metavar='CSV', help='--sample only: also write its labels CSV here')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.rate is not None and not args.rate > 0:
        print(f'fer-make-bag: --rate must be > 0, got {args.rate}', file=sys.stderr)
        return 2
    if args.max_frames is not None and args.max_frames < 1:
        print(f'fer-make-bag: --max-frames must be >= 1, got {args.max_frames}', file=sys.stderr)
        return 2
    if args.labels_out and not args.sample:
        print('fer-make-bag: --labels-out is only for --sample', file=sys.stderr)
        return 2
    if Path(args.out).exists():
        print(f'fer-make-bag: {args.out} exists already; choose another --out or delete it', file=sys.stderr)
        return 2
    fmt = args.fmt or ('compressed' if args.sample else 'raw')
    quality = args.quality if args.quality is not None else (70 if args.sample else 90)
    start_ns = None if args.start_time is None else round(args.start_time * 1e9)
    skipped = SkippedFiles([])
    frames: Iterator[tuple[np.ndarray, int | None]]     # (image, capture stamp ns or None)
    try:
        if args.video:
            frames, fps, total = video_frames(args.video, args.max_frames)
            rate = args.rate or fps or 10.0
        elif args.images:
            frames, total = image_folder_frames(args.images, skipped, args.max_frames)
            rate = args.rate or 10.0
        elif args.device is not None:
            rate = args.rate or 10.0
            total = args.max_frames or 100
            frames = device_frames(args.device, total, rate)
        else:
            rate = args.rate or SAMPLE_RATE_HZ
            seq = list(sample_sequence())
            frames = ((f, None) for f, _ in seq)
            total = len(seq)
            start_ns = SAMPLE_START_NS if start_ns is None else start_ns
        count = write_bag(frames, args.out, storage=args.storage, fmt=fmt, rate=rate, frame_id=args.frame_id,
                          topic=args.topic, encoding=args.encoding, quality=quality, start_ns=start_ns,
                          total=total, progress=not args.no_progress)
    except (MakeBagError, BagError, ValueError) as exc:
        print(f'fer-make-bag: {exc}', file=sys.stderr)
        return 2
    if args.labels_out:
        Path(args.labels_out).write_text(sample_labels_csv(rate))
    topic = args.topic or default_topic(fmt)
    print(f'wrote {count} frames to {args.out} ({args.storage}, {fmt}, topic {topic}, {rate:g} Hz)')
    if count == 0:
        print('fer-make-bag: no frame was written', file=sys.stderr)
        return 1
    if skipped.files:
        print(f'fer-make-bag: {len(skipped.files)} file(s) skipped: {", ".join(skipped.files)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
