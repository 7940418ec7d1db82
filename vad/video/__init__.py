"""Video-side feature preparation: decoding into 16-frame clips, dense optical flow
(Farneback / TV-L1) and the capstone's Lucas-Kanade movement values.

One decoding pass can feed everything::

    reader = ClipReader(path, size=(240, 320))
    flows, tracker = FlowStream("farneback"), MovementTracker()
    for clip in reader:                       # (16, H, W, 3) uint8 RGB
        images = render_denseflow(flows.update(clip))   # (16, H, W, 3) uint8 for C3D
        movement = tracker.update(clip)                   # float, summed LK displacement
"""

from vad.video.decode import (
                              EMPTY,
                              TOO_SHORT,
                              UNREADABLE,
                              ClipReader,
                              VideoError,
                              VideoInfo,
                              iter_clips,
                              probe,
                              to_gray,
                              too_short,
)
from vad.video.flow import (
                              FARNEBACK_PARAMS,
                              FLOW_BOUND,
                              FlowStream,
                              clip_flow,
                              farneback,
                              flow_method,
                              has_tvl1,
                              render_denseflow,
                              resolve_method,
                              scale_flow_i3d,
                              tvl1,
)
from vad.video.lk_movement import (
                              FEATURE_PARAMS,
                              LK_PARAMS,
                              MovementTracker,
                              movement_per_clip,
                              movement_segments,
)

__all__ = [
    "EMPTY", "TOO_SHORT", "UNREADABLE", "ClipReader", "VideoError", "VideoInfo", "iter_clips", "probe",
    "to_gray", "too_short", "FARNEBACK_PARAMS", "FLOW_BOUND", "FlowStream", "clip_flow", "farneback",
    "flow_method", "has_tvl1", "render_denseflow", "resolve_method", "scale_flow_i3d", "tvl1",
    "FEATURE_PARAMS", "LK_PARAMS", "MovementTracker", "movement_per_clip", "movement_segments",
]
