"""Test classes for behaviour that several implementations share; each implementation's
test module subclasses them with a fixture giving its implementation (fsspec's pattern)."""
