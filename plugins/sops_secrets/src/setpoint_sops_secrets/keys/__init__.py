"""Recovering a file's data key from its master keys (age, PGP) and Shamir key groups."""

from setpoint_sops_secrets.keys.datakey import KeyRecovery, NoDataKey, recover_data_key
from setpoint_sops_secrets.keys.keyring import Keyring

__all__ = ["KeyRecovery", "Keyring", "NoDataKey", "recover_data_key"]
