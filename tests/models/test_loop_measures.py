"""Pure pieces of the job recipe (issue 10): the app's val rule, L2-SP and weight
blending. The loop benchmark's own measures: tests/benchmarks/test_bench_loop.py."""
import pytest
import torch

from models import finetune
from common.splits import auto_split, auto_split_file
from models.train import l2sp_penalty


def test_auto_split_of_a_file_is_the_apps_one_in_five_by_hash(tmp_path):
    import hashlib

    from segui import handlers
    assert handlers.auto_split is auto_split          # the app and the benchmark share one rule
    splits = []
    for i in range(50):
        f = tmp_path / f"{i}.bin"
        f.write_bytes(f"image {i}".encode())
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        expected = "val" if int(digest[:12], 16) % 5 == 0 else "train"
        assert auto_split_file(f) == auto_split(digest) == expected
        splits.append(auto_split_file(f))
    assert 3 <= splits.count("val") <= 20


def test_l2sp_penalty_is_the_squared_distance_from_the_start():
    p = [torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([[0.5]]))]
    anchors = [torch.tensor([0.0, 2.0]), torch.tensor([[1.5]])]
    pen = l2sp_penalty(p, anchors)
    assert abs(pen.item() - 2.0) < 1e-6
    pen.backward()
    assert p[0].grad.tolist() == [2.0, 0.0] and p[1].grad.tolist() == [[-2.0]]


def test_interpolate_state_blends_floats_and_keeps_integer_buffers():
    base = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(3), "h": torch.tensor([1.0], dtype=torch.float16)}
    new = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(9), "h": torch.tensor([3.0], dtype=torch.float16),
           "extra": torch.tensor([7.0])}
    out = finetune.interpolate_state(base, new, 0.25)
    assert out["w"].tolist() == [0.5, 3.0]
    assert out["n"].item() == 9 and out["h"].dtype == torch.float16 and out["h"].item() == 1.5
    assert out["extra"].tolist() == [7.0]
    assert finetune.interpolate_state(base, new, 1.0)["w"].tolist() == [2.0, 0.0]


def test_default_recipe_keys():
    p = finetune.default_params()
    cfg = finetune.train_config(finetune.default_params(l2sp=0.5))
    assert cfg.l2sp == 0.5 and isinstance(p["blend"], list) and 1.0 in p["blend"]


def test_choose_blend_moves_as_far_as_val_allows(monkeypatch):
    """Largest a first; the first not below the base's val mIoU is kept; else the best."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)                       # trained
    base_state = {"weight": torch.zeros(1, 1)}       # base
    score = {1.0: 0.40, 0.6: 0.52, 0.3: 0.55}         # val mIoU of each blend
    monkeypatch.setattr(finetune, "evaluate_model",
                        lambda m, *a: {"miou": score[round(float(m.weight.item()), 3)]})
    a, metrics, tried = finetune.choose_blend(model, base_state, None, [], 255, "cpu", [0.3, 1.0, 0.6], 0.5)
    assert (a, metrics["miou"], tried) == (0.6, 0.52, [(1.0, 0.40), (0.6, 0.52)])
    assert model.weight.item() == pytest.approx(0.6)
    with torch.no_grad():
        model.weight.fill_(1.0)
    a, _, tried = finetune.choose_blend(model, {"weight": torch.zeros(1, 1)}, None, [], 255, "cpu",
                                        [1.0, 0.6, 0.3], 0.9)
    assert a == 0.3 and len(tried) == 3              # none keeps 0.9: the best tried


def test_lovasz_softmax_on_hard_predictions_is_one_minus_the_mean_iou_of_present_classes():
    """The Lovasz extension is exact on one-hot probabilities: 1 - IoU per class present in the
    labels, averaged; void pixels count for nothing; soft probabilities get a gradient."""
    import torch
    from models.train import lovasz_softmax_loss

    g = torch.Generator().manual_seed(0)
    K, void = 4, 9
    labels = torch.randint(0, 3, (2, 6, 7), generator=g)  # class 3 never present
    pred = torch.randint(0, K, (2, 6, 7), generator=g)
    labels[0, 0, :3] = void
    pred[0, 0, :3] = 3  # predictions under void must not count against class 3 or anyone
    probs = torch.nn.functional.one_hot(pred, K).permute(0, 3, 1, 2).float()
    keep = labels != void
    ious = []
    for c in range(3):
        t, p = (labels == c) & keep, (pred == c) & keep
        ious.append((t & p).sum().item() / (t | p).sum().item())
    want = 1 - sum(ious) / 3
    got = lovasz_softmax_loss(probs, labels, void).item()
    assert abs(got - want) < 1e-6, (got, want)
    perfect = torch.nn.functional.one_hot(labels.clamp(max=K - 1), K).permute(0, 3, 1, 2).float()
    assert lovasz_softmax_loss(perfect, labels, void).item() < 1e-6
    logits = torch.randn(2, K, 6, 7, generator=g, requires_grad=True)
    lovasz_softmax_loss(logits.softmax(1), labels, void).backward()
    assert logits.grad.abs().sum() > 0
