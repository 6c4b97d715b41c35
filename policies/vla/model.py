"""The VLA model and its training, in torch on CPU (torch is imported by these functions only).

- a small CNN whose layers are modulated by the instruction (FiLM), read out by a spatial
  soft-argmax;
- an instruction encoder that keeps word order: word + position embeddings, one self-attention
  layer over the words (padding masked), pooled; in training, WORD_DROPOUT of the words become the
  unknown token, so its embedding is learned (an unknown word is read as "some word here");
- an MLP on proprioception;
- a head that outputs a chunk of CHUNK hand-position targets for both hands (WBC targets);
- a feasibility head: P(the instruction can be done in this scene) from the keypoints, the words
  and how strongly each instruction-modulated feature fires anywhere in the image (exported as the output `feasible`; below the package's threshold the runtime does not act);
- in training only, an auxiliary head that says where the named object is (keypoints + words).
Images are augmented in training (randomise.augment).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from vertebra.policies.vla.randomise import augment
from vertebra.policies.vla.tasks import CHUNK, IMAGE, TOKENS, VOCAB

AUX_WEIGHT = 0.5  # training: weight of the auxiliary loss (where is the named object?)
FEASIBLE_WEIGHT = 0.5  # ... and of the feasibility head's (binary cross-entropy, the classes balanced:
# the instructions that cannot be done are a few percent of the frames, and unweighted the head
# learned to say "feasible" always)
WORD_DROPOUT = 0.1  # training: the share of words replaced by the unknown token
PROPRIO_NOISE = 0.15  # training: Gaussian noise on the normalised arm state ...
PROPRIO_DROP = 0.2    # ... and the share of samples whose arm state is zeroed


def build_model(n_state: int, act_dim: int) -> Any:
    """The network: forward(image [B,3,IMAGE,IMAGE], tokens [B,TOKENS], state [B,n_state]) -> (actions
    [B,CHUNK,act_dim] (normalised), feasible [B,1]); forward_all returns the feasibility's logit and
    the auxiliary object position [B,3] instead."""
    import torch
    from torch import nn

    class FiLMNet(nn.Module):
        """Instruction-modulated CNN -> spatial soft-argmax keypoints; + words in order; + proprioception."""

        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(len(VOCAB), 64)
            self.pos = nn.Parameter(torch.zeros(1, TOKENS, 64))
            self.q, self.k, self.v = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)
            self.mix = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))
            self.txt = nn.Sequential(nn.Linear(128, 128), nn.GELU())
            self.c1 = nn.Conv2d(3, 32, 5, 2, 2)
            self.c2 = nn.Conv2d(32, 64, 3, 2, 1)
            self.c3 = nn.Conv2d(64, 64, 3, 1, 1)
            self.f1, self.f2, self.f3 = nn.Linear(128, 64), nn.Linear(128, 128), nn.Linear(128, 128)
            self.st = nn.Sequential(nn.Linear(n_state, 128), nn.GELU())
            self.head = nn.Sequential(nn.Linear(128 + 128 + 128, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                                      nn.Linear(512, CHUNK * act_dim))
            self.feas = nn.Sequential(nn.Linear(128 + 128 + 64, 64), nn.GELU(), nn.Linear(64, 1))
            # training only (not exported): where the named object is, from the image and the words
            self.aux = nn.Sequential(nn.Linear(128 + 128, 128), nn.GELU(), nn.Linear(128, 3))
            side = IMAGE // 4
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
            self.register_buffer("gx", xs.reshape(1, 1, -1))
            self.register_buffer("gy", ys.reshape(1, 1, -1))

        @staticmethod
        def film(x: Any, gb: Any) -> Any:
            g, b = gb.chunk(2, dim=1)
            return x * (1 + g[:, :, None, None]) + b[:, :, None, None]

        def words(self, tokens: Any) -> Any:
            """The instruction [B, 128]: embeddings + positions, one masked self-attention layer,
            mean- and max-pooled over the words."""
            mask = (tokens != 0).float()  # [B, T]
            x = self.emb(tokens) + self.pos
            att = self.q(x) @ self.k(x).transpose(1, 2) / 8.0  # [B, T, T]; sqrt(64)
            att = att + (mask[:, None, :] - 1.0) * 1e4  # a pad is never attended to
            x = x + torch.softmax(att, dim=2) @ self.v(x)
            x = x + self.mix(x)
            m = mask[..., None]
            mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
            peak = (x + (m - 1.0) * 1e4).max(dim=1).values
            return self.txt(torch.cat([mean, peak], dim=1))

        def forward(self, image: Any, tokens: Any, state: Any) -> tuple[Any, Any]:
            """(actions [B, CHUNK, act_dim] normalised, feasible [B, 1]: a probability)."""
            actions, logit, _ = self.forward_all(image, tokens, state)
            return actions, torch.sigmoid(logit)

        def forward_all(self, image: Any, tokens: Any, state: Any) -> tuple[Any, Any, Any]:
            t = self.words(tokens)
            x = torch.nn.functional.gelu(self.film(self.c1(image), self.f1(t)))
            x = torch.nn.functional.gelu(self.film(self.c2(x), self.f2(t)))
            x = self.film(self.c3(x), self.f3(t))
            a = torch.softmax(x.flatten(2), dim=2)  # per channel: where in the image
            kp = torch.cat([(a * self.gx).sum(2), (a * self.gy).sum(2)], dim=1)
            actions = self.head(torch.cat([kp, t, self.st(state)], dim=1)).reshape(-1, CHUNK, act_dim)
            seen = torch.cat([kp, t], dim=1)
            # how strongly the words' features fire anywhere in the image: is the named object there?
            strength = x.flatten(2).amax(dim=2)
            return actions, self.feas(torch.cat([seen, strength], dim=1)), self.aux(seen)

    return FiLMNet()


def train(data: dict[str, np.ndarray], epochs: int, seed: int,
          say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """Train on `collect()`'s data; returns the network and {"stats": normalisation, "losses", "samples"}.
    Validation is on whole held-out episodes (a tenth of them)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    acts = data["actions"]
    stats = {"state_mean": data["state"].mean(0), "state_std": data["state"].std(0) + 1e-3,
             "act_mean": acts.reshape(-1, acts.shape[-1]).mean(0),
             "act_std": acts.reshape(-1, acts.shape[-1]).std(0) + 1e-3,
             "img_mean": np.array([0.5, 0.5, 0.5], np.float32), "img_std": np.array([0.25, 0.25, 0.25], np.float32)}
    img = torch.from_numpy(data["images"])  # uint8 N,H,W,3; normalised per batch
    tok = torch.from_numpy(data["tokens"])
    st = torch.from_numpy(((data["state"] - stats["state_mean"]) / stats["state_std"]).astype(np.float32))
    y = torch.from_numpy(((acts - stats["act_mean"]) / stats["act_std"]).astype(np.float32))
    goal = data["goal"] if "goal" in data else np.full((len(y), 3), np.nan, np.float32)
    has_goal = torch.from_numpy(np.isfinite(goal).all(1))
    known = goal[np.isfinite(goal).all(1)]
    g_mean, g_std = (known.mean(0), known.std(0) + 1e-3) if len(known) else (np.zeros(3), np.ones(3))
    g = torch.from_numpy(np.nan_to_num((goal - g_mean) / g_std).astype(np.float32))
    mean = torch.tensor(stats["img_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(stats["img_std"]).view(1, 3, 1, 1)

    feasible = torch.from_numpy(data["feasible"].astype(np.float32) if "feasible" in data
                                else np.ones(len(y), np.float32))
    n_no = float((feasible == 0).sum())
    feas_w = torch.where(feasible == 0, torch.tensor((len(feasible) - n_no) / max(n_no, 1.0)), torch.tensor(1.0))
    feas_w = feas_w / feas_w.mean()
    gen = torch.Generator().manual_seed(seed)

    def images(j: Any, train: bool = False) -> Any:
        x = img[j].permute(0, 3, 1, 2).float() / 255.0
        if train:
            x = augment(x, gen)
        return (x - mean) / std

    def dropped(t: Any) -> Any:
        """Word dropout: a share of the (non-pad) words become the unknown token (id 1)."""
        drop = (torch.rand(t.shape, generator=gen) < WORD_DROPOUT) & (t != 0)
        return torch.where(drop, torch.ones_like(t), t)

    net = build_model(st.shape[1], y.shape[2])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    steps_per_epoch = max(1, len(y) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    # Validation on whole held-out episodes (unseen scenes), not on frames of training episodes.
    eps = data.get("episode", np.arange(len(y)))
    uniq = rng.permutation(np.unique(eps))
    val_eps = set(uniq[: max(1, len(uniq) // 10)].tolist())
    is_val = np.array([e in val_eps for e in eps])
    val, tr = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    losses: dict[str, float] = {}
    t0 = time.monotonic()
    for ep in range(epochs):
        net.train()
        perm = rng.permutation(tr)
        for b in range(steps_per_epoch):
            j = torch.from_numpy(perm[b * 128:(b + 1) * 128])
            if len(j) == 0:
                continue
            # Proprioception is noised and sometimes dropped, so the model cannot just continue
            # from where the arm is ("copycat") and has to find the object in the image.
            sj = st[j] + PROPRIO_NOISE * torch.randn_like(st[j])
            sj = sj * (torch.rand(len(j), 1) > PROPRIO_DROP).float()
            pred, logit, where = net.forward_all(images(j, train=True), dropped(tok[j]), sj)
            # an instruction that cannot be done has no motion to learn beyond staying: its actions
            # (home) are learned too, but the feasibility head decides
            act_loss = ((pred - y[j]) ** 2).mean()
            feas_loss = torch.nn.functional.binary_cross_entropy_with_logits(logit[:, 0], feasible[j], weight=feas_w[j])
            loss = act_loss + FEASIBLE_WEIGHT * feas_loss
            m = has_goal[j]
            if bool(m.any()):
                loss = loss + AUX_WEIGHT * ((where[m] - g[j][m]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            jv = torch.from_numpy(val)
            vp, vf = net(images(jv), tok[jv], st[jv])
            vl = float(((vp - y[jv]) ** 2).mean())
            said = (vf[:, 0] >= 0.5).float()
            no = feasible[jv] == 0
            # each class on its own: a head that always says "feasible" is right on the many, wrong on the few
            vacc = float((said[~no] == 1).float().mean()) if bool((~no).any()) else float("nan")
            vnot = float((said[no] == 0).float().mean()) if bool(no.any()) else float("nan")
        losses = {"train_mse": float(act_loss.detach()), "val_mse": vl, "val_feasible_recall": vacc,
                  "val_infeasible_recall": vnot}
        say(f"training: epoch {ep + 1}/{epochs}, batch mse {float(act_loss.detach()):.4f}, validation mse {vl:.4f}, "
            f"says feasible on {vacc:.3f} of the feasible and cannot on {vnot:.3f} of the rest "
            f"({time.monotonic() - t0:.0f} s)")
    return net, {"stats": stats, "losses": losses, "samples": len(y)}
