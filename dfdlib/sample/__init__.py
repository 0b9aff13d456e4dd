"""The sample data: generated footage, the labelled sample set, the demo and the notebook helpers.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
