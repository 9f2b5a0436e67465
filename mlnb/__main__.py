from mlnb.cli import entry

entry()
