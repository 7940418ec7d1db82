"""Readers of the feature layouts people download (see README, "Real features")."""
