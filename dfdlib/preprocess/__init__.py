"""Stage 1, videos -> faces: detection, tracks, square crops, the dataset run and `dfd preprocess`.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
