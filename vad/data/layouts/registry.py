"""The known feature layouts by ``data.name``, and building one from a ``data`` config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vad.data.layouts.base import Layout
from vad.data.layouts.capstone_h5 import CapstoneH5
from vad.data.layouts.percrop_npy import PercropNpy
from vad.data.layouts.seed_npy import SeedNpy
from vad.data.layouts.sh_i3d import ShI3d
from vad.data.layouts.sultani_txt import SultaniTxt
from vad.data.layouts.tencrop_npy import TencropNpy
from vad.data.layouts.xd_i3d import XdI3d

LAYOUTS: dict[str, type[Layout]] = {
    "ucf_crime_npy": SeedNpy,
    "sultani_txt": SultaniTxt,
    "capstone_h5": CapstoneH5,
    "tencrop_npy": TencropNpy,
    "percrop_npy": PercropNpy,
    "sh_i3d": ShI3d,
    "xd_i3d": XdI3d,
}


def _value(value):
    """Plain Python value of a config entry; strings that name files get ``~`` expanded."""
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, str) and value.startswith("~"):
        value = str(Path(value).expanduser())
    return value


def _get(cfg, key: str):
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)


def open_layout(data_cfg) -> Layout:
    """The layout ``data_cfg.name`` over ``data_cfg.root``, with the options the config sets
    (keys of the layout's ``options``; missing or null ones keep the layout's defaults)."""
    name = _get(data_cfg, "name")
    if name not in LAYOUTS:
        raise ValueError(f"unknown feature layout data.name={name!r}: expected one of "
                         f"{', '.join(LAYOUTS)}")
    cls = LAYOUTS[name]
    root = _get(data_cfg, "root")
    if root is None:
        raise ValueError(f"data={name} needs data.root=PATH ({getattr(cls, 'root_hint', 'the features')})")
    options = {}
    for key in getattr(cls, "options", ()):
        value = _get(data_cfg, key)
        if value is not None:
            options[key] = _value(value)
    return cls(Path(str(root)).expanduser(), **options)
