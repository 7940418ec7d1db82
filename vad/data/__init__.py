"""Feature readers; each returns :class:`~vad.data.features.Splits` for a ``data`` config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vad.pooling import SULTANI, Pooling

if TYPE_CHECKING:  # importing torch costs seconds; vad.prepare never needs it
    from vad.data.features import Splits


def load_splits(data_cfg, streams: tuple[str, ...], extractor: str, extractor_dim: int,
                snippets: bool = False, need_train: bool = True, pooling: Pooling = SULTANI,
                dataset: str = "ucf_crime") -> Splits:
    """Dispatch on ``data.name``: ``synthetic``, ``store`` or a feature layout read directly
    (validated in one pass); ``snippets`` asks for the test videos' snippet features too;
    ``need_train=False`` (evaluation) accepts a store without training videos; ``pooling`` is
    the method's (``method.inputs``); ``dataset`` the benchmark (``dataset.name``: the synthetic
    data imitate it)."""
    if data_cfg.name == "synthetic":
        from vad.data import synthetic
        return synthetic.load(data_cfg, streams, extractor, extractor_dim, snippets, pooling, dataset)
    if data_cfg.name == "store":
        from vad.data import store
        return store.load(data_cfg, streams, extractor_dim, snippets, need_train=need_train, pooling=pooling,
                          dataset=dataset)
    from vad.data.layouts.registry import open_layout
    from vad.data.reading import load_layout, read_options
    if snippets:
        raise ValueError(f"eval.protocol=snippets needs per-snippet test features: prepare a store "
                         f"from data={data_cfg.name} with `python -m vad.prepare ... keep_snippets=true` "
                         "and train with data=store, or use eval.protocol=segments")
    layout = open_layout(data_cfg)
    if layout.kind == "segments" and pooling != SULTANI:
        raise ValueError(f"data={data_cfg.name} holds features already pooled into Sultani's 32 "
                         f"L2-normalised segments, but the method trains on {pooling.tag} segments "
                         "(method.inputs): use per-snippet features (a clip layout such as "
                         "data=tencrop_npy, or a store prepared with keep_snippets=all), or method=mil")
    return load_layout(layout, streams, extractor_dim, pooling=pooling, **read_options(data_cfg))
