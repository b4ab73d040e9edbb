"""SliceGAN: a 3D generator trained against 2D critics (Kench & Cooper 2021).

Modules: :mod:`.nets` (generator, critic), :mod:`.presets` (network sizes),
:mod:`.data` (training images to tensors, patch sampling), :mod:`.train` (the
training job), :mod:`.generate` (volumes of any size), :mod:`.fileformat`
(the published ``NAME_Gen.pt`` / ``NAME_params.data`` files, loaded safely).
"""

from ..errors import MicrolibError


class SliceGANError(MicrolibError):
    """Bad input to SliceGAN training or generation (one-line reason)."""


IMTYPES = ("nphase", "grayscale", "colour")
