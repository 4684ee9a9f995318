"""GPU validation: PyTorch (a CUDA wheel) natively and through the shim:
a tensor round trip, a matmul and a small model's forward pass, each
compared with the same computation on the CPU; the checksums printed must
be the same both ways. Prints SKIPPED when torch, its CUDA support or a
device is missing.
"""
import hashlib
import sys

try:
    import torch
except ImportError as e:
    print("SKIPPED: torch is not importable: %s" % e)
    sys.exit(0)
if not torch.cuda.is_available():
    print("SKIPPED: torch sees no CUDA device (torch %s)" % torch.__version__)
    sys.exit(0)


def digest(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda:0")
print("device %s" % torch.cuda.get_device_name(0))

x = torch.randn(1 << 20)
assert torch.equal(x.to(dev).cpu(), x), "round trip"
print("checksum roundtrip %s" % digest(x.to(dev)))

a, b = torch.randn(512, 256), torch.randn(256, 384)
c = (a.to(dev) @ b.to(dev)).cpu()
assert torch.allclose(c, a @ b, rtol=1e-3, atol=1e-3), "matmul"
print("checksum matmul %s" % digest(torch.round(c, decimals=3)))

model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 16, 3, padding=1),
    torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(4),
    torch.nn.Flatten(),
    torch.nn.Linear(256, 10),
).eval()
inp = torch.randn(8, 3, 32, 32)
with torch.no_grad():
    want = model(inp)
    got = model.to(dev)(inp.to(dev)).cpu()
assert torch.allclose(got, want, rtol=1e-3, atol=1e-4), "forward pass"
print("checksum forward %s" % digest(torch.round(got, decimals=3)))
print("PASS")
