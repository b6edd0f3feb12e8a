"""Movies -> photoreceptor luminance on the hex lattice (flyvis BoxEye), from DAVIS or embedded sources."""

from .boxeye import KERNEL, min_frame_size, receptor_pixels, render, window_pixels
from .davis import VideoError, augment, load_videos, split_sequences
from .movies import (NATURAL_IMAGES, NATURAL_TEST_IMAGES, bar_sequence, flash_sequence, frame_size,
                     grating_sequence, load_natural_image, luminance, natural_sequence, noise_sequence)
from .scenes import scene_sequence
from .sources import train_test_frames

__all__ = [
    "KERNEL", "NATURAL_IMAGES", "VideoError", "NATURAL_TEST_IMAGES", "augment", "bar_sequence", "flash_sequence",
    "frame_size", "grating_sequence", "load_natural_image", "load_videos", "luminance", "min_frame_size",
    "natural_sequence", "noise_sequence", "receptor_pixels", "render", "scene_sequence", "split_sequences",
    "train_test_frames", "window_pixels",
]
