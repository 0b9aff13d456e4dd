"""Stage 3, labels + faces -> model: `train()`, its setup and checkpoints, self-blend, sweeps and `dfd train`.

(Named `training`, not `train`: `dfdlib.train` is the public train() function.)

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
