"""Enhancement: a conditional GAN that turns noisy speech's log-mel into a clean one, rendered by
the trained speech vocoder (analysis by the GAN, synthesis by the vocoder).

- :mod:`.noise` — noise types, made offline and seeded, and mixing at an SNR;
- :mod:`.data` — noisy/clean pairs on the fly (training) and fixed (dev, test);
- :mod:`.sets` — the recipe's clean speech and its fixed pairs;
- :mod:`.config` — the ``enhance:`` recipe section;
- :mod:`.model` — the U-Net enhancer and the pair critic (registered in
  :mod:`specgan.stage_one.registry` as the mel → mel family);
- :mod:`.trainer` — the step function on the shared training skeleton.
"""
