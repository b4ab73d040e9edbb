"""The wizard's steps, in order. Shared by the store (status per step), GUI and CLI."""

STEPS: tuple[str, ...] = ("browse", "crop", "segment", "scalebar", "inpaint", "train", "inspect", "export")

STEP_TITLES: dict[str, str] = {
    "browse": "Browse",
    "crop": "Crop",
    "segment": "Segment",
    "scalebar": "Scale bar",
    "inpaint": "Inpaint",
    "train": "Train",
    "inspect": "Inspect",
    "export": "Export",
}

#: Status values of a step for one entry.
TODO, DONE, STALE = "todo", "done", "stale"

#: MicroLib's five reasons to exclude a micrograph (Kench et al. 2022, "Selection").
EXCLUSION_REASONS: tuple[str, ...] = (
    "anisotropic",
    "non-representative",
    "uneven exposure",
    "duplicate of another entry",
    "low quality",
)
