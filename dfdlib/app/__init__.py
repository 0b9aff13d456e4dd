"""The web app (`dfd app`, extra `dfdlib[app]`): Gradio is imported only when the app is built.

The public names are served flat by `dfdlib` (`dfdlib.<name>`).
"""
