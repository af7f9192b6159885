"""Instances: drivers that run them and the helpers they need."""
