"""setpoint plugin that decrypts SOPS files natively (age, PGP, Shamir), MAC-verified.

Public API (see docs/secrets.md): :func:`decrypt_file`, :func:`decrypt_bytes`, :class:`SopsFile`,
:func:`check_tree`, :class:`CheckResult`, :class:`SopsSettings`, :func:`detect_format`.
"""

from setpoint_sops_secrets.api import SopsFile, decrypt_bytes, decrypt_file
from setpoint_sops_secrets.check import CheckResult, check_tree
from setpoint_sops_secrets.errors import SopsFormatError, SopsIntegrityError, SopsKeyError
from setpoint_sops_secrets.keys import Keyring
from setpoint_sops_secrets.settings import SopsSettings
from setpoint_sops_secrets.stores import FORMATS, detect_format

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "CheckResult",
    "Keyring",
    "SopsFile",
    "SopsFormatError",
    "SopsIntegrityError",
    "SopsKeyError",
    "SopsSettings",
    "check_tree",
    "decrypt_bytes",
    "decrypt_file",
    "detect_format",
]
