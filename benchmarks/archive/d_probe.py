"""D-only probe: can D_y tell real degraded images (a setting) from clean ones within 300 steps?

Usage: python benchmarks/d_probe.py SETTING [fast] [--fake-q Q]
(prints the mean D loss of the last 50 steps per variant; 2 ln 2 = 1.386 is chance). Real = degraded
dead leaves, fake = the clean originals (or, with --fake-q Q, the clean originals JPEG'd at quality Q
by Pillow), batch 32. --deq dequantises both like training (NR-GAN's U[0, 1/128)).
`fast` runs only the faster-D variants (residual 1, R1 1; widths 16 and 32);
`r1sweep` runs residual 1 with R1 0, 0.1, 1, 10 for 600 steps.
"""
import torch, time, numpy as np, sys
torch.set_num_threads(1)
from bncr.data import open_dataset
from bncr.degradations.settings import get_setting, degrade
from bncr.nets.resnet import ResNetDiscriminator
from bncr.models.losses import d_loss_nonsaturating, r1_penalty
from bncr.models.pixels import levels_to_model
clean = open_dataset('deadleaves', count=2000)
S = get_setting(sys.argv[1])
x = np.stack([clean[i] for i in range(2000)]); y = np.stack([degrade(x[i], S, 0, i)[0] for i in range(2000)])
# "real" = degraded, "fake" = clean (what D must tell apart if G_x makes clean images w/o degradation)
if '--fake-q' in sys.argv:
    from bncr.degradations.jpeg import jpeg_pil
    fq = int(sys.argv[sys.argv.index('--fake-q') + 1]); x = np.stack([jpeg_pil(im, fq) for im in x])
X = torch.from_numpy(x).permute(0,3,1,2).float(); Y = torch.from_numpy(y).permute(0,3,1,2).float()   # grey levels
DEQ = '--deq' in sys.argv    # map like training (models/pixels.py) for real and fake
def to_model(u8, g):
    return levels_to_model(u8, torch.rand(u8.shape, generator=g) if DEQ else None, DEQ)
def run(width=16, rf=0.1, lr=2e-4, r1=10.0, steps=300, b=32, beta1=0.0):
    torch.manual_seed(0)
    D = ResNetDiscriminator(32, width, residual_factor=rf)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.99))
    g = torch.Generator().manual_seed(0); losses=[]
    for s in range(steps):
        i = torch.randint(0,2000,(b,),generator=g); j = torch.randint(0,2000,(b,),generator=g)
        real = to_model(Y[i], g).requires_grad_(True); fake = to_model(X[j], g)
        lr_ = D(real); lf = D(fake)
        loss = d_loss_nonsaturating(lr_, lf) + (r1*r1_penalty(lr_, real) if r1 else 0)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(d_loss_nonsaturating(lr_, lf).item())
    return np.mean(losses[-50:])
variants = [dict(), dict(r1=0), dict(rf=1.0), dict(lr=1e-3), dict(width=32), dict(rf=1.0, r1=1.0), dict(lr=1e-3, rf=1.0)]
if 'fast' in sys.argv[2:]:
    variants = [dict(rf=1.0, r1=1.0), dict(rf=1.0, r1=1.0, width=32)]
if 'r1sweep' in sys.argv[2:]:   # does the gradient penalty hide fine-scale (sub-grey-level) cues?
    variants = [dict(rf=1.0, r1=r, steps=600) for r in (0.0, 0.1, 1.0, 10.0)]
for kw in variants:
    t=time.time(); print(sys.argv[1], kw, round(run(**kw),4), f'{time.time()-t:.0f}s', flush=True)
