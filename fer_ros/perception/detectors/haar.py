"""Detector kind 'haar': OpenCV's frontal-face Haar cascade (the fallback that needs no model file)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from fer_ros.perception.detectors.base import DetectorConfig, FaceDetector

_HAAR_FILE = 'haarcascade_frontalface_default.xml'
_SYSTEM_CASCADE_DIRS = ('/usr/share/opencv4/haarcascades', '/usr/share/opencv/haarcascades',
                        '/usr/local/share/opencv4/haarcascades')


def find_haar_cascade(name: str = _HAAR_FILE) -> str:
    """Path of an OpenCV Haar cascade: opencv-python's cv2.data, else the system's cascade folders.

    Raises:
        FileNotFoundError: no cascade found (opencv-python 5.x ships none; install opencv-python<5 or
            the system's opencv data package).
    """
    places = []
    data = getattr(cv2, 'data', None)
    if data is not None and getattr(data, 'haarcascades', None):
        places.append(data.haarcascades)
    places.extend(_SYSTEM_CASCADE_DIRS)
    for place in places:
        path = os.path.join(place, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'Haar cascade {name} not found in {places}; install opencv-python-headless<5 '
                            '(5.x ships no cascades) or the system OpenCV data package')


class HaarDetector(FaceDetector):
    """OpenCV frontal-face Haar cascade on the gray downscaled frame."""

    name = 'haar'
    scale_factor = 1.1
    min_neighbors = 5

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        path = find_haar_cascade()
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f'detector haar: OpenCV could not load the cascade {path}')

    def _detect(self, small_bgr, min_size, threads):
        gray = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY)
        side = max(1, int(min_size))
        faces = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(side, side))
        boxes = np.asarray(faces, np.float32).reshape(-1, 4)
        return boxes, np.ones(len(boxes), np.float32), None
