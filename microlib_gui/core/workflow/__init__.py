"""The steps of one entry, one module per step (ilastik's operators, without a GUI).

Each step module has ``inputs(library, entry_id)`` (what the step reads, derived
here and nowhere else), its job function, and ``save(library, entry_id, ...)``,
which ends in one :meth:`~microlib_gui.core.library.Library.complete_step`
transaction. The GUI panels, the ``microlib`` entry commands and ``microlib
build`` all call these, so the three cannot drift apart.
"""
