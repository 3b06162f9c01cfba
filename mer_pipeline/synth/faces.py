"""Synthetic subjects made from real face photos.

A subject is one photo (default: `skimage.data.astronaut()`, or the user's own with `--faces DIR`)
turned into a distinct identity: a smooth warp of the landmark-anchored face regions (eye spacing,
brow height, nose length, mouth width, jaw, face length), mirroring, skin tone and skin texture,
a studio background, a lighting gradient, then placed (scale, roll, position) into the dataset's
frame size with a realistically sized face. The result, `Subject.base`, is the neutral frame the
renderer warps; its 68 landmarks are found by dlib on the final image.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from . import aus
from .errors import SynthFaceError

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    sha256: str


@dataclass
class Subject:
    key: str  # "<dataset>/<subject>"
    base: np.ndarray  # neutral frame: (H, W, 3) BGR uint8, or (H, W) uint8 for grey datasets
    landmarks: np.ndarray  # (68, 2) float32, raw (x, y) of the base frame
    identity: dict  # the parameters that made it (for the truth file)
    motion_weight: np.ndarray  # (H, W) float32: how much of the head motion each pixel follows


# ---------------------------------------------------------------------------------------------
# dlib, loaded once per process

def _model_path(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")  # never imported: needs pkg_resources
    if spec is None or spec.origin is None:
        raise SynthFaceError(
            "the dlib landmark model is missing; install it with `pip install face-recognition-models`"
        )
    return Path(spec.origin).parent / "models" / name


@lru_cache(maxsize=1)
def _dlib():
    import dlib

    predictor = dlib.shape_predictor(str(_model_path("shape_predictor_68_face_landmarks.dat")))
    return dlib.get_frontal_face_detector(), predictor


def detect_faces(grey: np.ndarray, upsample: int = 0) -> list[tuple[float, np.ndarray]]:
    """All faces dlib's HOG detector finds in a grey uint8 image: [(score, (68, 2) float32 x, y)],
    best first."""
    detector, predictor = _dlib()
    grey = np.ascontiguousarray(grey)
    rects, scores, _ = detector.run(grey, upsample, 0.0)
    found = []
    for rect, score in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
        shape = predictor(grey, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        found.append((float(score), pts))
    return found


# ---------------------------------------------------------------------------------------------
# photos

def load_photos(faces: Path | None) -> list[Photo]:
    """The photos subjects are made from: astronaut() by default, else every image in `faces`."""
    if faces is None:
        from skimage import data

        rgb = np.ascontiguousarray(data.astronaut())
        return [Photo("skimage.data.astronaut", rgb, hashlib.sha256(rgb.tobytes()).hexdigest())]
    folder = Path(faces)
    if not folder.is_dir():
        raise SynthFaceError(f"faces {folder}: not a folder; give a folder of face photos (one face each)", param="faces")
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PHOTO_EXTENSIONS:
            continue
        raw = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SynthFaceError(f"{path}: cannot decode the image; remove it from the folder of face photos")
        photos.append(Photo(path.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), hashlib.sha256(raw).hexdigest()))
    if not photos:
        raise SynthFaceError(f"faces {folder}: no image files ({', '.join(PHOTO_EXTENSIONS)}) found", param="faces")
    return photos


_PHOTO_LANDMARKS: dict[str, np.ndarray] = {}
_PHOTO_MATTES: dict[str, np.ndarray] = {}


def photo_landmarks(photo: Photo) -> np.ndarray:
    """68 landmarks of the (single, best) face in a photo, cached per photo within the process."""
    if photo.sha256 not in _PHOTO_LANDMARKS:
        grey = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY)
        found = detect_faces(grey, 0) or detect_faces(grey, 1)
        if not found:
            raise SynthFaceError(
                f"{photo.name}: dlib finds no face; use a frontal photo with a face at least 80 px wide"
            )
        _PHOTO_LANDMARKS[photo.sha256] = found[0][1]
    return _PHOTO_LANDMARKS[photo.sha256]


def photo_matte(photo: Photo) -> np.ndarray:
    """Person (head, hair, shoulders) vs background of a photo, float32 0..1, by GrabCut seeded from
    the landmarks; cached per photo within the process."""
    if photo.sha256 not in _PHOTO_MATTES:
        lm = photo_landmarks(photo).astype(np.float64)
        h, w = photo.rgb.shape[:2]
        _, ex, ey, iod = aus.face_frame(lm)
        angle = float(np.degrees(np.arctan2(ex[1], ex[0])))
        head_c = lm[17:27].mean(axis=0) + ey * 0.15 * iod
        seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
        for axes, label in (((2.3, 2.6), cv2.GC_PR_BGD), ((1.6, 1.9), cv2.GC_PR_FGD)):
            cv2.ellipse(seeds, (int(head_c[0]), int(head_c[1])), (int(axes[0] * iod), int(axes[1] * iod)),
                        angle, 0, 360, int(label), -1)
        chin = lm[8]
        below = (np.arange(h)[:, None] - (chin[1] + 0.3 * iod)) / iod
        body = (below > 0) & (np.abs(np.arange(w)[None, :] - chin[0]) < iod * (1.0 + 1.6 * np.clip(below, 0, None)))
        seeds[body] = cv2.GC_PR_FGD
        hull = np.concatenate([lm[0:17], lm[17:27] - [0, 0.3 * iod]]).astype(np.int32)
        cv2.fillConvexPoly(seeds, cv2.convexHull(hull), int(cv2.GC_FGD))
        cv2.setRNGSeed(0)  # GrabCut's k-means initialisation draws from OpenCV's RNG
        bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
        cv2.grabCut(cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2BGR), seeds, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
        matte = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
        _PHOTO_MATTES[photo.sha256] = cv2.GaussianBlur(matte, (0, 0), 0.8)
    return _PHOTO_MATTES[photo.sha256]


# ---------------------------------------------------------------------------------------------
# identity

def draw_identity(rng: np.random.Generator, n_photos: int, strength: float = 1.0) -> dict:
    """Random identity traits (all plain floats, stored in the truth file)."""
    u = rng.uniform
    return {
        "photo": int(rng.integers(n_photos)),
        "mirror": bool(rng.integers(2)),
        "scale": u(0.92, 1.08),
        "roll_deg": u(-4.0, 4.0),
        "shift": [u(-0.05, 0.05), u(-0.04, 0.04)],
        "geometry": {  # in IOD units
            "eye_spacing": strength * u(-0.06, 0.06),
            "brow_height": strength * u(-0.08, 0.08),
            "nose_length": strength * u(-0.08, 0.08),
            "mouth_width": strength * u(-0.10, 0.10),
            "jaw_width": strength * u(-0.10, 0.10),
            "face_length": strength * u(-0.08, 0.08),
        },
        "skin": {"l_gain": u(0.82, 1.12), "a_shift": u(-4.0, 9.0), "b_shift": u(-8.0, 12.0)},
        "texture": u(1.5, 3.5),
        "light": {"strength": u(0.0, 0.35), "angle": u(0.0, 2 * np.pi), "gain": u(0.9, 1.08)},
        "background": {"grey": u(70.0, 200.0), "tint": [u(-12, 12), u(-12, 12)], "blotch": u(3.0, 9.0)},
        "texture_seed": int(rng.integers(2**31)),
    }


def _geometry_bumps(lm: np.ndarray, geometry: dict) -> list[dict]:
    """The identity warp as displacement bumps (photo pixels), anchored like AU bumps."""
    centre, ex, ey, iod = aus.face_frame(lm)
    g = geometry
    specs = [  # (anchor landmarks, displacement in IOD units along (ex, ey), sigma in IOD)
        (range(36, 42), (-g["eye_spacing"] / 2, 0.0), 0.35),
        (range(42, 48), (g["eye_spacing"] / 2, 0.0), 0.35),
        (range(17, 22), (0.0, -g["brow_height"]), 0.3),
        (range(22, 27), (0.0, -g["brow_height"]), 0.3),
        (range(31, 36), (0.0, g["nose_length"]), 0.3),
        ((48,), (-g["mouth_width"] / 2, 0.0), 0.25),
        ((54,), (g["mouth_width"] / 2, 0.0), 0.25),
        (range(3, 6), (-g["jaw_width"] / 2, 0.0), 0.45),
        (range(11, 14), (g["jaw_width"] / 2, 0.0), 0.45),
        ((8,), (0.0, g["face_length"]), 0.55),
        (range(48, 68), (0.0, g["face_length"] * 0.6), 0.45),
    ]
    bumps = []
    for anchor, (dx, dy), sigma in specs:
        c = lm[list(anchor)].mean(axis=0)
        vec = iod * (dx * ex + dy * ey)
        bumps.append({"x": c[0], "y": c[1], "sigma": sigma * iod, "u": vec[0], "v": vec[1]})
    return bumps


def _skin_mask(shape, lm: np.ndarray, iod: float) -> np.ndarray:
    hull = np.concatenate([lm[0:17], lm[17:27] - [0, 0.35 * iod]])
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(hull.astype(np.int32)), 1.0)
    return cv2.GaussianBlur(mask, (0, 0), 0.12 * iod)


def _recolour_skin(rgb: np.ndarray, mask: np.ndarray, skin: dict) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)  # 8-bit LAB: L 0..255, a/b +128
    shifted = lab.copy()
    shifted[..., 0] *= skin["l_gain"]
    shifted[..., 1] += skin["a_shift"]
    shifted[..., 2] += skin["b_shift"]
    lab = lab + mask[..., None] * (shifted - lab)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _background(shape, bg: dict, rng: np.random.Generator) -> np.ndarray:
    """A plain studio wall: grey with a tint, a gentle gradient and soft blotches (float32 RGB)."""
    h, w = shape
    base = np.array([bg["grey"] + bg["tint"][0], bg["grey"], bg["grey"] + bg["tint"][1]], np.float32)
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    blotch = cv2.resize(rng.standard_normal((max(h // 64, 2), max(w // 64, 2))).astype(np.float32),
                        (w, h), interpolation=cv2.INTER_CUBIC)
    lum = 1.0 - 0.08 * ys + blotch * bg["blotch"] / 100.0
    return base[None, None, :] * lum[..., None]


def build_subject(key: str, photo: Photo, identity: dict, frame_size: tuple[int, int], jaw_width: float,
                  grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """Render the neutral base frame of a subject: returns (base uint8, person matte float32 (H, W))."""
    rng = np.random.default_rng(identity["texture_seed"])
    rgb = photo.rgb
    lm = photo_landmarks(photo).astype(np.float64)
    matte = photo_matte(photo)
    if identity["mirror"]:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
        matte = np.ascontiguousarray(matte[:, ::-1])
        lm = lm[aus.MIRROR].copy()
        lm[:, 0] = rgb.shape[1] - 1 - lm[:, 0]
    ph, pw = rgb.shape[:2]
    _, _, _, iod = aus.face_frame(lm)

    # 1. face geometry: backward warp with the identity field (an approximation of its inverse is
    #    fine here: the identity only has to be smooth and different, not exact).
    geo = aus.field_on_grid(_geometry_bumps(lm, identity["geometry"]), (ph, pw))
    gx, gy = np.meshgrid(np.arange(pw, dtype=np.float32), np.arange(ph, dtype=np.float32))
    mx, my = gx - geo[0].astype(np.float32), gy - geo[1].astype(np.float32)
    rgb = cv2.remap(rgb, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    matte = cv2.remap(matte, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    li = np.clip(np.round(lm).astype(int), 0, [pw - 1, ph - 1])
    lm = lm + geo[:, li[:, 1], li[:, 0]].T

    # 2. skin tone and fine skin texture (static: it moves with the face, which helps flow)
    skin = _skin_mask((ph, pw), lm, iod)
    rgb = _recolour_skin(rgb, skin, identity["skin"]).astype(np.float32)
    texture = rng.standard_normal((ph, pw)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 0.7) - cv2.GaussianBlur(texture, (0, 0), 2.0)
    texture *= identity["texture"] / (texture.std() + 1e-6)
    rgb += (skin * texture)[..., None]

    # 3. placement: similarity photo -> frame (scale to the dataset's face size, roll, position)
    w, h = frame_size
    jaw = float(np.linalg.norm(lm[16] - lm[0]))
    scale = identity["scale"] * jaw_width / jaw
    face_centre = lm[[27, 28, 29, 30, 33, 8]].mean(axis=0)
    target = np.array([w * (0.5 + identity["shift"][0]), h * (0.52 + identity["shift"][1])])
    m = cv2.getRotationMatrix2D((float(face_centre[0]), float(face_centre[1])), identity["roll_deg"], scale)
    m[:, 2] += target - face_centre
    fg = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

    # 4. composite the person over a studio background
    mask = cv2.warpAffine(matte, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[..., None]
    frame = _background((h, w), identity["background"], rng) * (1 - mask) + fg * mask
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]

    # 5. lighting: a directional gradient over the whole frame
    light = identity["light"]
    direction = np.array([np.cos(light["angle"]), np.sin(light["angle"])], np.float32)
    ramp = ((xs - w / 2) * direction[0] + (ys - h / 2) * direction[1]) / max(w, h)
    frame *= (light["gain"] * (1 + light["strength"] * ramp))[..., None]

    frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
    return frame, mask[..., 0]


def motion_weight(person: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """How much of the rigid head motion each pixel follows: 1 on the head (face and hair), fading
    to 0 down the neck; 0 on the shoulders and the background, which stay still. Smooth, so that
    the warp never tears."""
    _, _, _, iod = aus.face_frame(landmarks.astype(np.float64))
    chin = float(landmarks[8, 1])
    ys = np.arange(person.shape[0], dtype=np.float32)[:, None]
    fade = np.clip(1.0 - (ys - chin - 0.25 * iod) / (1.0 * iod), 0.0, 1.0)
    weight = cv2.GaussianBlur(person * fade, (0, 0), 3.0)
    weight[weight < 1e-3] = 0.0
    return weight


def make_subject(key: str, photos: list[Photo], rng: np.random.Generator, frame_size, jaw_width: float,
                 grey: bool, strength: float = 1.0, tries: int = 6) -> Subject:
    """A subject whose base frame dlib detects as exactly one face; redraws the identity otherwise."""
    for attempt in range(tries):
        identity = draw_identity(rng, len(photos), strength)
        photo = photos[identity["photo"]]
        base, person = build_subject(key, photo, identity, frame_size, jaw_width, grey)
        found = detect_faces(base if grey else cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), 0)
        if len(found) == 1:
            identity["photo"] = photo.name
            identity["photo_sha256"] = photo.sha256
            identity["attempts"] = attempt + 1
            return Subject(key, base, found[0][1], identity, motion_weight(person, found[0][1]))
    raise SynthFaceError(
        f"{key}: dlib did not find exactly one face in {tries} identities drawn from {photo.name}; "
        "use a frontal photo with one clearly visible face"
    )
