"""Video: H.264 over RTP (native), decode and encode through PyAV, sockets.

* :mod:`.h264_rtp` — RFC 6184 depacketizer/packetizer (native) and frames;
* :mod:`.codecs` — PyAV decoder/encoder, Teams and VBSS ladders, simulcast, stats;
* :mod:`.frames` — decoded frames with numpy views and cached conversions;
* :mod:`.sockets` — receive/send video and screen-share sockets on the engine.
"""

from .codecs import (
    SEND_LADDER,
    VBSS_LADDER,
    DecodeWorker,
    H264Decoder,
    H264Encoder,
    SimulcastEncoder,
    VideoLayer,
    VideoStreamStats,
)
from .frames import DecodedVideoFrame
from .h264_rtp import (
    EncodedVideoFrame,
    H264Depacketizer,
    H264Packetizer,
    RtpPayload,
    split_annexb,
)
from .sockets import (
    SimulcastSendSocket,
    VbssSendSocket,
    VbssSocket,
    VideoSendSocket,
    VideoSocket,
)

__all__ = [
    "SEND_LADDER",
    "VBSS_LADDER",
    "DecodeWorker",
    "DecodedVideoFrame",
    "EncodedVideoFrame",
    "H264Decoder",
    "H264Depacketizer",
    "H264Encoder",
    "H264Packetizer",
    "RtpPayload",
    "SimulcastEncoder",
    "SimulcastSendSocket",
    "VbssSendSocket",
    "VbssSocket",
    "VideoLayer",
    "VideoSendSocket",
    "VideoSocket",
    "VideoStreamStats",
    "split_annexb",
]
