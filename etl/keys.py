"""The secret behind the phone-number hash. From the environment when set; else generated once, kept beside the
writer database (never in the warehouse's published files), so hashes stay stable across reloads."""
import os
import secrets


def pii_key(config) -> bytes:
    from_env = config.pii_key()
    if from_env:
        return from_env
    path = config.warehouse_dir / "pii.key"
    if not path.exists():
        config.warehouse_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return path.read_text().strip().encode()
