"""Video files -> per-clip features: the extractor networks loaded for a set of streams
(:mod:`~vad.extraction.networks`) and the streaming pipeline that runs them over one video
(:mod:`~vad.extraction.pipeline`). Nothing here knows of stores, video lists or labels:
``vad.data.layouts.videos`` feeds a store from it, and a detector can score its clips."""
