"""The methods a user would pick instead of AutoLR, and `repro compare`, which sets them side by side.

Peer schedules (plateau, cosine, onecycle, knee) wrap torch.optim.lr_scheduler classes; LR-free
optimizers come from the schedulefree, prodigyopt and dadaptation packages.
"""
