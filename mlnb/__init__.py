"""mlnb."""
