"""pytest --nbval runs the notebooks here, not the example projects they create in scratch/."""

collect_ignore_glob = ["scratch/*", ".ipynb_checkpoints/*"]
