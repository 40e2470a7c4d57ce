"""Replicas sharded over (forced) host devices give the same trajectories as unsharded ones."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.first
def test_sharded_replicas_match_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("_sharded_replicas_script.py")
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["steps"] == 60
    assert out["devices_used"] == 4
    assert out["max_diff"] < 1e-10
