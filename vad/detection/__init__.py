"""A trained checkpoint applied to videos and streams (``python -m vad.detect``): the
detector and its scoring modes (:mod:`~vad.detection.detector`), events from scores
(:mod:`~vad.detection.events`) and the thresholds calibrated at the end of training
(:mod:`~vad.detection.calibration`). Plain torch, numpy and OpenCV: no Lightning; nothing in
``vad`` imports this package but ``vad.detect`` (and ``vad.train``, which stores the
calibration)."""
