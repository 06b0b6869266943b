"""Training: datasets, augmentation, the fer-train loop (DDP, exact resume), Table 5 ablations.

Entry points: ``fer-train`` (training.train), ``fer-ablation`` (training.ablation). Configs in
training/configs/. Needs torch (requirements-torch.txt) and the train extras (tqdm, matplotlib).
"""
