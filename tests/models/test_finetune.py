"""The fine-tuning recipe (`models.finetune`, a model library without storage): the
parameters, frozen encoder blocks, the promotion rule, and the absence of any storage
import. Running jobs (queue, workers, runner, DDP, cancel, crashes): tests/jobs."""
import os
import subprocess
import sys

import numpy as np
import torch

from models import finetune
from models.decoder import DecoderConfig
from models.image_encoder import ImageEncoderConfig
from models.segmenter import Segmenter, SegmenterConfig
from ..toy import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def toy_segmenter() -> Segmenter:
    """A small untrained model (no ImageNet weights) with two classes."""
    return Segmenter(SegmenterConfig(
        image_encoder=ImageEncoderConfig(pretrained=False),
        decoder=DecoderConfig(channels=16, embed_dim=16, attn_dim=8),
        class_names=["red thing", "blue thing"], ignore_index=255))


def test_default_params_and_overrides():
    p = finetune.default_params(epochs=3, max_minutes=None, lr=None)
    assert p["epochs"] == 3 and p["max_minutes"] == 2.5 and p["lr"] == 1e-3   # None keeps the default
    assert p["blend"] == [1.0, 0.6, 0.3] and p["l2sp"] == 0.0 and p["distill"] == 0.0
    cfg = finetune.train_config(p)
    assert (cfg.epochs, cfg.freeze_blocks, cfg.crop) == (3, 16, (256, 320))


def test_start_from_names_the_words_the_model_never_learned_and_keeps_what_it_first_learned(tmp_path):
    toy_segmenter().save_pretrained(tmp_path / "base")
    model, added = finetune.start_from(str(tmp_path / "base"), ["red thing", "crack"], [[255, 0, 0], [0, 0, 0]], 255)
    assert added == ["crack"] and model.config.class_names == ["red thing", "crack"]
    assert model.config.trained_class_names == ["red thing", "blue thing"]
    model.save_pretrained(tmp_path / "job1")            # a job's model: its config names the project's words
    again, added = finetune.start_from(str(tmp_path / "job1"), ["red thing", "crack"], [[255, 0, 0], [0, 0, 0]], 255)
    assert added == ["crack"] and again.config.trained_class_names == ["red thing", "blue thing"]
    _, added = finetune.start_from(str(tmp_path / "base"), ["blue thing", "red thing"], [[0, 0, 0]] * 2, 255)
    assert added == []
    assert finetune.default_params()["lr_new_words"] == 0.0   # off: it failed its check (BENCHMARKS)


def test_promotion_rule():
    n = finetune.MIN_VAL_TO_PROMOTE
    assert finetune.promotion(n, 0.5, 0.5) == (True, "promoted")           # equal is enough
    assert finetune.promotion(n, 0.5, 0.49)[1] == "not promoted: val mIoU dropped"
    assert finetune.promotion(n - 1, 0.5, 0.9)[1] == f"not promoted: {n - 1} val image(s), at least {n} needed"
    assert finetune.promotion(0, None, None)[1] == "not promoted: no val images to compare on"


def test_the_model_library_imports_no_storage_and_no_jobs():
    mods = ["models." + f[:-3] for f in sorted(os.listdir(os.path.join(REPO, "models")))
            if f.endswith(".py") and f != "__init__.py"]
    code = (f"import sys; import {', '.join(mods)}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('storage', 'jobs', 'segui', 'sqlalchemy')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]


def test_frozen_encoder_blocks_keep_their_weights_and_the_rest_trains():
    from models.train import SplitData, TrainConfig, train_model
    torch.manual_seed(0)
    model = toy_segmenter()
    rng = np.random.default_rng(1)
    data = [synthetic(rng) for _ in range(4)]
    enc = model.image_encoder
    frozen_before = {k: v.clone() for k, v in enc._blocks[:3].state_dict().items() if "weight" in k}
    free_before = {k: v.clone() for k, v in enc._blocks[3:].state_dict().items() if "weight" in k}
    dec_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    cfg = TrainConfig(epochs=3, batch_size=4, crop=(48, 64), scale=(0.8, 1.25), lr=3e-3, warmup_steps=1,
                      device="cpu", freeze_blocks=3)
    train_model(model, SplitData([d[0] for d in data], [d[1] for d in data]), None, cfg, show_progress=False)
    frozen_after = enc._blocks[:3].state_dict()
    free_after = enc._blocks[3:].state_dict()
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert any(not torch.equal(free_before[k], free_after[k]) for k in free_before)
    assert any(not torch.equal(v, model.decoder.state_dict()[k]) for k, v in dec_before.items())
    assert all(p.requires_grad for p in enc._blocks.parameters())  # frozen only while training


def test_distillation_keeps_a_job_near_the_model_it_started_from():
    """With a distill weight the trained model's predictions stay closer to the starting
    model's than without (same data, seed and steps); distill_loss is a per-pixel KL."""
    import copy

    from models.train import SplitData, TrainConfig, distill_loss, train_model
    a = torch.randn(2, 3, 4, 5)
    assert distill_loss(a, a).item() < 1e-6 and distill_loss(a, torch.randn(2, 3, 4, 5)).item() > 0
    p = torch.tensor([[[[0.0]], [[0.0]]]])              # model: (0.5, 0.5); teacher: (0.9, 0.1)
    q = torch.log(torch.tensor([[[[0.9]], [[0.1]]]]))
    want = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert abs(distill_loss(p, q).item() - want) < 1e-5
    torch.manual_seed(0)
    start = toy_segmenter()
    rng = np.random.default_rng(1)
    data = [synthetic(rng) for _ in range(4)]
    x = torch.stack([torch.from_numpy(d[0]).permute(2, 0, 1).float() / 255 for d in data])
    with torch.no_grad():
        before = start.eval()(x, class_names=start.config.class_names).logits
    drift = {}
    for w in (0.0, 20.0):
        model = copy.deepcopy(start)
        cfg = TrainConfig(epochs=4, batch_size=4, crop=(48, 64), scale=(0.8, 1.25), lr=3e-3, warmup_steps=1,
                          device="cpu", freeze_blocks=16, class_weight_power=0.0, distill=w)
        train_model(model, SplitData([d[0] for d in data], [d[1] for d in data]), None, cfg, show_progress=False)
        with torch.no_grad():
            drift[w] = distill_loss(model.eval()(x, class_names=start.config.class_names).logits, before).item()
    assert 0 < drift[20.0] < drift[0.0]
    assert finetune.train_config(finetune.default_params(distill=0.5)).distill == 0.5


def test_a_step_budget_stops_training_there_and_anneals_over_it():
    """``max_steps`` (a job parameter for benchmarks on a shared CPU): training stops after
    that many steps, mid-epoch too, and the schedule is laid over those steps."""
    from models.train import SplitData, TrainConfig, train_model
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    data = [synthetic(rng) for _ in range(4)]
    steps = []
    for budget in (None, 5):
        model = toy_segmenter()
        cfg = finetune.train_config(finetune.default_params(epochs=4, batch_size=2, crop=[48, 64], max_minutes=30,
                                                            max_steps=budget), device="cpu")
        seen = []
        out = train_model(model, SplitData([d[0] for d in data], [d[1] for d in data]), None, cfg,
                          show_progress=False, on_step=seen.append)
        steps.append(len(seen))
        assert not out["stopped"]     # a spent budget is not a cancel
    assert cfg.max_steps == 5 and steps == [8, 5]      # 4 epochs x 2 steps without the budget
    assert seen[-1]["total_steps"] == 5


def test_channels_last_training_is_the_same_arithmetic_and_gives_the_model_back_as_it_came(tmp_path):
    """On a CPU a job trains in channels_last memory (faster steps, BENCHMARKS.md): the same
    data and seed give the same losses step by step as the default layout, up to float
    rounding (Adam's first steps are sign-like, so weights with near-zero gradients can
    differ by a step; the losses show the arithmetic is the same), and the model comes back
    in the default layout, ready to blend, evaluate and save."""
    import copy

    from models.train import SplitData, TrainConfig, train_model
    torch.manual_seed(0)
    start = toy_segmenter()
    rng = np.random.default_rng(1)
    data = [synthetic(rng) for _ in range(4)]
    losses, trained = {}, {}
    for layout in (False, True):
        model, seen, during = copy.deepcopy(start), [], []
        conv = model.image_encoder._conv_stem.weight   # 3x3 over 3 channels: the two layouts differ

        def step(info, conv=conv, seen=seen, during=during):
            seen.append(info)
            during.append(conv.is_contiguous(memory_format=torch.channels_last))
        cfg = TrainConfig(epochs=3, batch_size=2, crop=(48, 64), scale=(0.8, 1.25), lr=3e-3, warmup_steps=1,
                          device="cpu", freeze_blocks=16, channels_last=layout)
        train_model(model, SplitData([d[0] for d in data], [d[1] for d in data]), None, cfg, show_progress=False,
                    on_step=step)
        assert set(during) == {layout}                              # the layout asked for, while training
        losses[layout], trained[layout] = [s["loss"] for s in seen], model
    assert TrainConfig().channels_last is None     # the default: on a CPU
    assert len(losses[True]) == len(losses[False]) == 6
    assert abs(losses[True][0] - losses[False][0]) < 1e-5       # the same forward pass
    assert np.allclose(losses[True], losses[False], rtol=2e-2)
    assert max(losses[False]) - min(losses[False]) > 0.1         # the losses do move: a real comparison
    convs = [p for p in trained[True].parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)       # given back in the default layout
    trained[True].save_pretrained(tmp_path / "m")
    again = Segmenter.from_pretrained(tmp_path / "m").state_dict()
    b = trained[True].state_dict()
    assert all(torch.equal(again[k], b[k]) for k in again if k in b and again[k].is_floating_point())
