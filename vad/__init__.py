"""vad: weakly-supervised video anomaly detection (see README.md)."""

import warnings

# conf/hydra/launcher/<name>.yaml keep the launcher plugins' names (what users type) and Hydra
# validates each against the plugin's schema of the same name, which is what we want, while
# warning on every composition that this is deprecated (hydra-core is pinned below 1.4).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema")
