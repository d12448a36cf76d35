"""Training engine shared by every trainable method (CLI ``focusstudio train`` and the wizard).

* :mod:`.synthesis` — multi-focus pair synthesis from sharp images and masks;
* :mod:`.datasets` — torch datasets (synthesized pairs, real pairs with ground truth), splits;
* :mod:`.losses` — SSIM, SESF loss, Dice, differentiable Q^{AB/F}, L1;
* :mod:`.recipe` / :mod:`.recipes` — what each method contributes (network, data, loss, validation);
* :mod:`.trainer` — the training generator (events, checkpoints, resume, pause, cancel, export);
* :mod:`.manifest` — weights files and their manifest;
* :mod:`.settings` — every training setting declared once (CLI flags, config, wizard fields);
* ``focusstudio train`` itself lives in the CLI layer (:mod:`focusstudio.training_cli`).
"""
