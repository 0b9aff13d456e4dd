"""Dataset folder layouts (real/fake, FF++, DFD, Celeb-DF, DFDC, manifest): read by preprocess and labels.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
