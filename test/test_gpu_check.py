"""`make gpu-check` (scripts/gpu_check.sh) passes on a machine without a GPU: every GPU check SKIPs with its
reason, the rest passes, and --rehearse-on-cpu runs the torch and training checks' code on the CPU (issue 18).
On a GPU machine the same script runs them on CUDA (docs/gpu.md)."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from fer_ros.backends.selection import probe_machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.skipif(probe_machine().gpu > 0, reason='a GPU is present: run `make gpu-check` itself')
def test_gpu_check_passes_here_with_the_gpu_parts_skipped():
    done = subprocess.run(['bash', 'scripts/gpu_check.sh', '--rehearse-on-cpu'], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    status = {name: result for result, name in re.findall(r'^(PASS|FAIL|SKIP) (\w+) ', out, re.M)}
    assert status == {'environment': 'PASS', 'backend_selection': 'PASS', 'cuda_buffers': 'SKIP',
                      'torch_cuda_vs_cpu': 'PASS', 'amp_training': 'PASS', 'tensorrt_tests': 'SKIP'}, out[-4000:]
    assert re.search(r"^SKIP cuda_buffers .*: no CUDA here: ", out, re.M)
    assert re.search(r"^SKIP tensorrt_tests .*TensorRT cannot run here .*comes from JetPack", out, re.M)
    assert re.search(r"^PASS backend_selection .*'auto_log': 'backend auto: the classifier runs on cpu", out, re.M)
    assert re.search(r"^PASS torch_cuda_vs_cpu .*'same_class': 1\.0", out, re.M)
    assert re.search(r'^4 passed, 0 failed, 2 skipped$', out, re.M)
