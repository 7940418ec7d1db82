"""vad: weakly-supervised video anomaly detection (see README.md)."""

import logging
import warnings

# conf/hydra/launcher/<name>.yaml keep the launcher plugins' names (what users type) and Hydra
# validates each against the plugin's schema of the same name, which is what we want, while
# warning on every composition that this is deprecated (hydra-core is pinned below 1.4).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")
# pytorch_lightning 2.6 builds torch's deprecated LeafSpec on every training step; nothing to
# act on for a user.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)


class _NoAdvertisement(logging.Filter):
    """Lightning advertises its cloud logger on every Trainer: not a message about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


# The loggers of Lightning's rank_zero_info (by name: importing Lightning here would slow every command).
for _name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoAdvertisement())
