"""Face backends: detect one face and its landmarks on a grey frame.

Two backends feed the same alignment code: `dlib` (HOG detector + the 68-point predictor shipped
by the `face-recognition-models` package) and `mediapipe` (0.10.14 legacy face mesh, 468 points,
models bundled in the wheel). Both load offline, once per process, on first use.

When several faces are found, the rule is: keep the largest-scoring one (dlib: detector score;
mediapipe: the largest face), and log it. Thresholds are never lowered to find a face.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MerError, NoFaceFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """Landmarks (L, 2) as (x, y) pixels of the frame, and the five alignment anchors (5, 2):
    subject's right eye centre, left eye centre, nose tip, right mouth corner, left mouth corner
    (image left to right for a frontal face)."""

    landmarks: np.ndarray
    anchors: np.ndarray
    score: float
    n_faces: int


def face_models_dir() -> Path:
    """Folder of the dlib model files of `face-recognition-models`, found without importing it
    (its __init__ needs pkg_resources, which current setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MerError(
            "the dlib landmark models are missing: install them with `pip install face-recognition-models` "
            "(or use --backend mediapipe)"
        )
    return Path(spec.origin).parent / "models"


class DlibBackend:
    """dlib HOG detector (best-scoring face) + 68-point shape predictor."""

    name = "dlib"
    n_landmarks = 68

    def __init__(self) -> None:
        import dlib

        model = face_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not model.is_file():
            raise MerError(f"{model}: dlib 68-point model missing; reinstall face-recognition-models")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model))
        self._dlib = dlib

    def detect(self, grey: np.ndarray) -> Face:
        grey = np.ascontiguousarray(grey)
        boxes, scores = self._find(grey)
        if not len(boxes):
            raise NoFaceFound("dlib found no face; check the frame shows a frontal face, or try --backend mediapipe")
        best = int(np.argmax(scores))
        if len(boxes) > 1:
            log.info("dlib found %d faces; keeping the best-scoring one (score %.2f)", len(boxes), scores[best])
        shape = self._predictor(grey, boxes[best])
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return Face(points, dlib68_anchors(points), float(scores[best]), len(boxes))


    def _find(self, grey: np.ndarray):
        """Face boxes and scores, searched coarse to fine with the same detector threshold.

        Half resolution first (4x less work; finds faces of ~160 px and more in the frame, as in
        every MER dataset), then full resolution, then 2x upsampled for small faces.
        """
        import cv2

        if min(grey.shape) >= 400:
            half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
            boxes, scores, _ = self._detector.run(half, 0, 0.0)
            if len(boxes):
                sx, sy = grey.shape[1] / half.shape[1], grey.shape[0] / half.shape[0]
                scaled = [self._dlib.rectangle(int(round(b.left() * sx)), int(round(b.top() * sy)),
                                               int(round(b.right() * sx)), int(round(b.bottom() * sy))) for b in boxes]
                return scaled, scores
        for upsample in (0, 1):
            boxes, scores, _ = self._detector.run(grey, upsample, 0.0)
            if len(boxes):
                return list(boxes), scores
        return [], []


def dlib68_anchors(points: np.ndarray) -> np.ndarray:
    """The five anchors from 68-point landmarks (0-based iBUG indices)."""
    return np.stack([
        points[36:42].mean(axis=0),  # eye on the image left
        points[42:48].mean(axis=0),  # eye on the image right
        points[30],                  # nose tip
        points[48],                  # mouth corner, image left
        points[54],                  # mouth corner, image right
    ]).astype(np.float32)


# Face-mesh indices (canonical 468-point topology) used for the anchors.
_MESH_EYE_LEFT = (33, 133, 159, 145, 160, 144, 158, 153)
_MESH_EYE_RIGHT = (362, 263, 386, 374, 385, 380, 387, 373)
_MESH_NOSE_TIP = 1
_MESH_MOUTH = (61, 291)


class MediapipeBackend:
    """mediapipe legacy face mesh (468 points), static-image mode, offline models from the wheel."""

    name = "mediapipe"
    n_landmarks = 468

    def __init__(self) -> None:
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as error:  # 0.10.30+ has no solutions API and no bundled models
            raise MerError(
                "this mediapipe has no legacy face mesh (needed offline); install mediapipe==0.10.14"
            ) from error
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=False,
                                        min_detection_confidence=0.5)

    def detect(self, grey: np.ndarray) -> Face:
        h, w = grey.shape
        rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        result = self._mesh.process(rgb)
        faces = result.multi_face_landmarks or []
        if not faces:
            raise NoFaceFound("mediapipe found no face; check the frame shows a face, or try --backend dlib")
        meshes = [np.array([[p.x * w, p.y * h] for p in f.landmark], dtype=np.float32) for f in faces]
        sizes = [np.ptp(m[:, 0]) * np.ptp(m[:, 1]) for m in meshes]
        best = int(np.argmax(sizes))
        if len(meshes) > 1:
            log.info("mediapipe found %d faces; keeping the largest", len(meshes))
        points = meshes[best]
        anchors = np.stack([
            points[list(_MESH_EYE_LEFT)].mean(axis=0),
            points[list(_MESH_EYE_RIGHT)].mean(axis=0),
            points[_MESH_NOSE_TIP],
            points[_MESH_MOUTH[0]],
            points[_MESH_MOUTH[1]],
        ]).astype(np.float32)
        return Face(points, anchors, 1.0, len(meshes))


# The one list of the backends (the CLI's --backend choices, `mer-prep list`, the shards' L).
BACKEND_CLASSES = {backend.name: backend for backend in (DlibBackend, MediapipeBackend)}
BACKENDS = tuple(BACKEND_CLASSES)

_CACHE: dict[str, object] = {}


def _known(name: str) -> type:
    if name not in BACKEND_CLASSES:
        raise MerError(f"unknown face backend {name!r}; choose one of {', '.join(BACKENDS)}", param="backend")
    return BACKEND_CLASSES[name]


def landmark_count(name: str) -> int:
    """Landmarks per face of the backend `name` (the shards' L), without loading its models."""
    return _known(name).n_landmarks


def get_backend(name: str):
    """The backend `name`, created once per process (model loading takes ~1 s)."""
    if name not in _CACHE:
        _CACHE[name] = _known(name)()
    return _CACHE[name]


def detect_face(grey: np.ndarray, backend: str = "dlib") -> Face:
    return get_backend(backend).detect(grey)
