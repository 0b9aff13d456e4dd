"""Stage 2, faces -> labels CSV: the schema, the CSV file, splits, importers and `dfd labels`.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
