"""A trained checkpoint applied to videos and streams (``python -m vad.detect``): the detector
and its scoring modes (:mod:`~vad.detection.detector`), events from scores
(:mod:`~vad.detection.events`), the thresholds calibrated at the end of training
(:mod:`~vad.detection.calibration`), the sources read on their own threads
(:mod:`~vad.detection.sources`, :mod:`~vad.detection.streaming`) and what a run writes
(:mod:`~vad.detection.outputs`, :mod:`~vad.detection.annotate`, :mod:`~vad.detection.report_html`).
Plain torch, numpy, OpenCV and PyAV: no Lightning; nothing in ``vad`` imports this package but
``vad.detect`` (and ``vad.train``, which stores the calibration)."""
