"""Deployment phases: each module builds the steps of one layer from the spec."""
