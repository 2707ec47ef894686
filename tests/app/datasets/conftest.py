import gzip
import struct

import torch
from PIL import Image


def write_jpeg(path, seed=0, size=(40, 30), mode="RGB"):
    """A small random JPEG at ``path`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = torch.randint(0, 256, (size[1], size[0], channels), generator=generator, dtype=torch.uint8)
    Image.fromarray(pixels.squeeze(-1).numpy(), mode).save(path, "JPEG")


def write_idx_gz(path, tensor):
    """``tensor`` (uint8) as a gzip IDX file, the Fashion-MNIST format: magic 0x0000 08 ndim, sizes."""
    header = struct.pack(">I", 0x0800 | tensor.dim()) + b"".join(struct.pack(">I", n) for n in tensor.shape)
    with gzip.open(path, "wb") as out:
        out.write(header + tensor.contiguous().numpy().tobytes())
