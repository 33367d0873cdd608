"""torch for the parity scripts (float64 by default, one thread), or exit 77 (the test is
skipped) when python3-torch is not installed."""
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("python3-torch is not installed: skipped (scripts/install-deps python3-torch)")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
