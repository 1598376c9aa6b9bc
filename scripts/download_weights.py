"""Download ESMFold v1 once (needs a network) into a folder usable as fold.weights.

    python scripts/download_weights.py --out weights/esmfold_v1

Then set ``fold.weights: weights/esmfold_v1`` (or copy the folder to the cluster).
"""

import argparse

from foldatlas.model import download_esmfold

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", required=True, help="folder to write (config.json + safetensors)")
args = parser.parse_args()
print(f"saved ESMFold v1 to {download_esmfold(args.out)}")
