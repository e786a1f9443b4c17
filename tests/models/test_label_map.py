"""models.label_map: PCA of class vectors, cosine similarity, close and confused pairs."""
import numpy as np

from models.label_map import close_pairs, confused_pairs, cosine_similarity, pair_confusion, pca_2d


def test_pca_keeps_a_plane_and_its_distances():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(6, 2)) * [3.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(16, 2)))[0]          # an orthonormal 2D basis in 16D
    vectors = plane @ basis.T + 5.0                            # offset: PCA centres it
    xy, explained = pca_2d(vectors)
    assert xy.shape == (6, 2) and abs(explained - 1.0) < 1e-9  # all the variance lies in the plane
    d_in = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    d_out = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    assert np.allclose(d_in, d_out)
    again, _ = pca_2d(vectors)
    assert np.array_equal(xy, again)                           # signs fixed: no flipping
    noisy = np.hstack([vectors, rng.normal(size=(6, 3))])
    assert pca_2d(noisy)[1] < 1.0


def test_similarity_and_close_pairs():
    v = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 2.0]])
    sim = cosine_similarity(v)
    assert np.allclose(np.diag(sim), 1) and np.allclose(sim, sim.T)
    assert abs(sim[0, 3]) < 1e-12 and sim[0, 1] > 0.99
    names = ["road", "street", "sky", "car"]
    assert [(a, b) for a, b, _ in close_pairs(names, sim, 0.6)] == [("road", "street")]
    assert close_pairs(names, sim, 1.01) == []


def test_pair_confusion_takes_the_worse_direction():
    # rows labelled, columns predicted: 20% of b's pixels go to a, 1% of a's go to b
    conf = np.array([[990, 10, 0], [200, 800, 0], [0, 0, 50]])
    pc = pair_confusion(conf)
    assert np.allclose(pc, pc.T) and np.all(np.diag(pc) == 0)
    assert abs(pc[0, 1] - 0.2) < 1e-12 and pc[0, 2] == 0
    assert confused_pairs(["a", "b", "c"], conf, 0.05) == [("a", "b", 0.2)]
    assert confused_pairs(["a", "b", "c"], conf, 0.25) == []
    assert pair_confusion(np.zeros((2, 2))).sum() == 0          # an empty matrix: no division by zero
