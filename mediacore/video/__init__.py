"""Video: H.264 over RTP (native), decode and encode through PyAV, sockets."""

from .h264_rtp import (
    EncodedVideoFrame,
    H264Depacketizer,
    H264Packetizer,
    RtpPayload,
    split_annexb,
)

__all__ = [
    "EncodedVideoFrame",
    "H264Depacketizer",
    "H264Packetizer",
    "RtpPayload",
    "split_annexb",
]
