"""GRD-Net in PyTorch: networks, losses, anomaly synthesis, data, training, evaluation, checkpoints."""
