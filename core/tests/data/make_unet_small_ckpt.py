"""Writes unet_small.ckpt: a PyTorch-format (zip + pickle) Lightning-style checkpoint of the
docs/reference.md §2.2 small UNet with the docs/reference.md §2.7 formula weights, without needing torch installed.

Layout, as torch.save writes it: {"state_dict": {"model.unet.<key>": tensor,
"model.diffusion.net.<key>": the same tensor (shared storage)}, "epoch": 0}. Run from this folder:
python3 make_unet_small_ckpt.py
"""
import collections, io, math, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
class FloatStorage: pass
FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage
def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils

class Storage:
    def __init__(self, key, numel): self.key, self.numel = key, numel

class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape
    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc); acc *= d
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))

class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None

entries = []
for line in open("unet_small_state_dict.txt"):
    key, shape = line.split()
    entries.append((key, [int(s) for s in shape.strip("()").split(",") if s]))

state, blobs = collections.OrderedDict(), {}
for k, (key, shape) in enumerate(entries):
    n = math.prod(shape)
    data = struct.pack("<%df" % n, *[0.1 * math.sin(0.37 * i + 0.11 * k + 0.5) for i in range(n)])
    t = Tensor(Storage(str(k), n), shape)
    blobs[str(k)] = data
    state["model.unet." + key] = t
    state["model.diffusion.net." + key] = t

buf = io.BytesIO()
Pickler(buf, protocol=2).dump({"state_dict": state, "epoch": 0})
with zipfile.ZipFile("unet_small.ckpt", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    for key, data in blobs.items():
        z.writestr("archive/data/" + key, data)
    z.writestr("archive/version", "3\n")
