"""Facts every layer shares (UCF-Crime's classes, the 16-frame clip, Sultani's 32 segments,
the names of streams, splits and options), at the bottom of the import graph."""

CLIP_FRAMES = 16
DEFAULT_FPS = 30.0  # the frame rate assumed for a video whose header gives none
N_SEGMENTS = 32

CLASSES = (
    "Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
    "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism",
)
NORMAL = "Normal"

STREAMS = ("RGB", "FLOW", "AUDIO")
# The streams vad computes from videos (its C3D and I3D networks); AUDIO comes as features only.
VIDEO_STREAMS = ("RGB", "FLOW")
# Streams whose feature dimension does not depend on the extractor: XD-Violence's VGGish audio.
FIXED_DIMS = {"AUDIO": 128}
SPLITS = ("train", "test")
VAL_SOURCES = ("test", "train_holdout")
PROTOCOLS = ("segments", "snippets")
CROP_MODES = ("mean", "one", "all")
PAIRINGS = ("elementwise", "all")
BINS = ("round", "floor")
CROP_INPUTS = ("bags", "axis")
