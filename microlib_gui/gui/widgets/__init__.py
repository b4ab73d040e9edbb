"""Widgets the step panels and the main window are built from (views, plots, list models, dialogs)."""
