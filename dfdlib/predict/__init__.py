"""Stage 4, model + video -> verdict: predict, evaluate, ensembles, the models folder, Grad-CAM.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
