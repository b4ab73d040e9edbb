"""The library's declarations shared by the store, the workflow and the exports."""
