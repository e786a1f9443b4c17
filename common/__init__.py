"""Rules shared by the model library, storage and the app, each written once.

Dependency-light on purpose (standard library, numpy and Pillow only): ``models``
imports it without pulling SQLAlchemy, and ``storage`` without pulling torch.

- :mod:`common.labels`: label-set rules (class-name cleaning, validation, free-text parsing).
- :mod:`common.images`: image suffixes, the one image decoder, the minimum image side.
- :mod:`common.colors`: default class colours (recognisable and well separated).
- :mod:`common.splits`: the automatic train / val split (one image in five, by hash).
- :mod:`common.queue_order`: the unlabelled queue's pick (uncertain, and unlike what was submitted).
"""
