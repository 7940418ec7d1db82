"""vad.detect: apply a trained detector to videos and live streams."""
