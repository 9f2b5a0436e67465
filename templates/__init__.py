"""The notebook templates shipped with mlnb (installed as the package data of mlnb.templates)."""
