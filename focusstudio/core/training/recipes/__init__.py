"""Built-in training recipes; each import registers one (add one line per new trainable method)."""

from focusstudio.core.training.recipes import gacn as _gacn  # noqa: F401
from focusstudio.core.training.recipes import mfifgan as _mfifgan  # noqa: F401
from focusstudio.core.training.recipes import sesf as _sesf  # noqa: F401
from focusstudio.core.training.recipes import twostream as _twostream  # noqa: F401
from focusstudio.core.training.recipes import ufa as _ufa  # noqa: F401
