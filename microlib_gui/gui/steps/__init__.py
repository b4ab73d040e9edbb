"""One module per wizard step; each defines a ``StepPanel`` subclass named ``Panel``."""
