"""Reading a checkpoint written by ``vad.train``, with an error that says what is wrong when the
file is something else (garbage, truncated, another project's checkpoint)."""

from __future__ import annotations

from pathlib import Path

from vad.cli import UserError

WHERE = "checkpoints are under <run folder>/checkpoints/ (best: epoch*-auc*.ckpt, last.ckpt)"


def read(path) -> dict:
    """The checkpoint dict (``state_dict``, ``epoch``, ``global_step``, ``hyper_parameters``
    with the training run's config under ``run``), read on the CPU."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path} does not exist; {WHERE}")
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise UserError(f"not a vad checkpoint: {path} (torch.load failed: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'no message'}); {WHERE}") from err
    if not isinstance(checkpoint, dict):
        raise UserError(f"not a vad checkpoint: {path} (it holds a {type(checkpoint).__name__}, not a "
                        f"Lightning checkpoint dict); {WHERE}")
    missing = [key for key in ("state_dict", "epoch", "hyper_parameters") if key not in checkpoint]
    run = checkpoint.get("hyper_parameters", {}).get("run") if not missing else None
    if missing or not isinstance(run, dict):
        what = f"no {', '.join(missing)}" if missing else "no hyper_parameters.run: not written by vad.train"
        raise UserError(f"not a vad checkpoint: {path} ({what}); {WHERE}")
    return checkpoint


def write(path, checkpoint: dict) -> None:
    """Save ``checkpoint`` to ``path`` through a temporary file renamed into place (never a
    half-written checkpoint under its name)."""
    import os

    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
