"""Alternative wordings for the CamVid class names.

TRAIN_SYNONYMS are shown to the model during training (a random one per class per
step), so it learns to read words, not to memorise 11 fixed vectors.
HELD_OUT_SYNONYMS are never seen in training: `models.evaluate --classes` with them
measures how much mIoU a different wording costs.
"""

TRAIN_SYNONYMS: dict[str, list[str]] = {
    "sky": ["sky", "the sky", "clouds", "blue sky"],
    "building": ["building", "house", "buildings", "architecture"],
    "pole": ["pole", "lamp post", "post", "utility pole"],
    "road": ["road", "street", "roadway", "asphalt"],
    "pavement": ["pavement", "sidewalk", "footpath", "walkway"],
    "tree": ["tree", "trees", "vegetation", "foliage"],
    "sign symbol": ["sign symbol", "traffic sign", "sign", "road sign"],
    "fence": ["fence", "railing", "barrier", "fencing"],
    "car": ["car", "vehicle", "automobile", "van"],
    "pedestrian": ["pedestrian", "person", "people walking", "walker"],
    "bicyclist": ["bicyclist", "cyclist", "bike rider", "person on a bicycle"],
}

HELD_OUT_SYNONYMS: dict[str, str] = {
    "sky": "heavens",
    "building": "facade",
    "pole": "streetlight pole",
    "road": "driving lane",
    "pavement": "footway",
    "tree": "greenery",
    "sign symbol": "signboard",
    "fence": "barricade",
    "car": "sedan",
    "pedestrian": "person walking",
    "bicyclist": "rider on a bike",
}


def synonyms_for(names: list[str]) -> list[list[str]]:
    """Training wordings per class (a name without an entry keeps only itself)."""
    return [TRAIN_SYNONYMS.get(n, [n]) for n in names]
