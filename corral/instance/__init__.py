"""Instances: the Instance interface (instance.py), its types by name (types.py: container, fake),
the manager that loads, locks and starts them (manager.py), the drivers that run them (drivers/)."""
