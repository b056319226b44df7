"""Active learning, as in DP-GEN: a committee of models explores with ML-MD, CP2K labels only
the frames the committee disagrees on, and the training set grows iteration by iteration.

- :mod:`.deviation`: the committee's model deviation per frame, the trust window, the
  choice of candidates and the stop rule;
- :mod:`.label`: CP2K single points of the candidates in one restartable job;
- :mod:`.loop`: what each rule of rules/active_learning.smk calls.
"""
