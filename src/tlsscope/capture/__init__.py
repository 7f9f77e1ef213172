"""The capture edge: capture files and link-layer frames -> TCP Segments."""

from .frames import IpDefragmenter, decode_frame
from .pcapfile import CaptureError, CaptureReader, open_capture

__all__ = ["CaptureError", "CaptureReader", "IpDefragmenter", "decode_frame", "open_capture"]
