"""Frame numbers from file names and robust frame reading."""
import cv2
import numpy as np
import pytest

from mer_pipeline.errors import FrameError
from mer_pipeline.frames import frame_number, list_frames, read_grey


@pytest.mark.parametrize("name, number", [
    ("img46.jpg", 46), ("reg_img46.jpg", 46), ("006_05562.jpg", 5562), ("image106273.bmp", 106273),
    ("reg_image106273.bmp", 106273), ("355.jpg", 355), ("S005_001_00000011.png", 11), ("000.jpeg", 0),
])
def test_frame_number_from_names(name, number):
    assert frame_number(name) == number


def test_list_frames_sorts_by_number_and_skips_non_images(tmp_path):
    for n in (10, 9, 100):
        cv2.imwrite(str(tmp_path / f"img{n}.jpg"), np.zeros((4, 4), np.uint8))
    (tmp_path / "Desktop - Shortcut.lnk").write_text("junk")
    (tmp_path / "Thumbs.db").write_text("junk")
    assert list(list_frames(tmp_path)) == [9, 10, 100]


def test_duplicate_numbers_are_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "img5.jpg"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "img005.jpg"), np.zeros((4, 4), np.uint8))
    with pytest.raises(FrameError, match="both carry number 5"):
        list_frames(tmp_path)


def test_read_grey_handles_modes(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1] = 200
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    deep = np.full((8, 8), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), deep)
    assert read_grey(tmp_path / "a.png").shape == (8, 8)
    assert read_grey(tmp_path / "b.png").max() == 255


def test_read_grey_errors_name_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "junk.jpg").write_bytes(b"\x00" * 100)
    with pytest.raises(FrameError, match="empty.jpg.*empty"):
        read_grey(tmp_path / "empty.jpg")
    with pytest.raises(FrameError, match="junk.jpg"):
        read_grey(tmp_path / "junk.jpg")
    with pytest.raises(FrameError, match="missing"):
        read_grey(tmp_path / "none.jpg")
