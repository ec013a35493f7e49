"""Face detection for fo-face, with the Haar cascade that ships inside OpenCV's wheel."""

from __future__ import annotations

import threading
from typing import Any

from pixelport.transform.geometry import Box

DETECT_SIZE = 640  # detection runs on a copy at most this large: fast, and enough for faces
_local = threading.local()


def _classifier() -> Any:
    # A classifier per worker thread: OpenCV does not promise detectMultiScale is thread-safe.
    classifier = getattr(_local, "classifier", None)
    if classifier is None:
        import cv2

        path = str(cv2.data.haarcascades) + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise RuntimeError(f"OpenCV face cascade missing at {path}")
        _local.classifier = classifier
    return classifier


def detect(image: Any) -> Box | None:
    """The box around all faces found in a pyvips image, or None."""
    import numpy as np

    scale = min(1.0, DETECT_SIZE / max(image.width, image.height))
    small = image.resize(scale) if scale < 1 else image
    if small.hasalpha():
        small = small.flatten(background=[255, 255, 255])
    grey = small.colourspace("b-w")[0].cast("uchar")
    pixels = np.ndarray(buffer=grey.write_to_memory(), dtype=np.uint8,
                        shape=(grey.height, grey.width))
    minimum = max(20, min(grey.width, grey.height) // 20)
    faces = _classifier().detectMultiScale(pixels, scaleFactor=1.1, minNeighbors=5,
                                           minSize=(minimum, minimum))
    if len(faces) == 0:
        return None
    left = min(int(f[0]) for f in faces)
    top = min(int(f[1]) for f in faces)
    right = max(int(f[0] + f[2]) for f in faces)
    bottom = max(int(f[1] + f[3]) for f in faces)
    return Box(round(left / scale), round(top / scale), max(1, round((right - left) / scale)),
               max(1, round((bottom - top) / scale)))
