"""Thin Qt layer: the wizard shell and one panel per step. All computation is in core."""
