"""Image classification: cross-entropy training, test loss and top-1 (and top-5) accuracy."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..autolr.ranks import data_parallel

from ..data.vision import load_image_data
from ..models import build_model
from .base import Task


class ClassificationTask(Task):
    """A ResNet or small CNN trained with cross entropy on an image data set."""

    def __init__(self, cfg, device: torch.device):
        super().__init__(device)
        data = load_image_data(cfg.dataset, cfg.paths.data_dir)
        self.train_set, self.test_set = data.train, data.test
        self.model = build_model(cfg.model).to(device)
        self.top5 = bool(cfg.dataset.get("top5", cfg.dataset.num_classes >= 100))
        self.metric_columns = ("test_loss", "test_acc", "test_top5") if self.top5 else ("test_loss", "test_acc")
        self.eval_batch_size = cfg.trainer.eval_batch_size
        self.num_workers = cfg.trainer.num_workers

    def loss(self, model, batch) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        top1 = torch.zeros((), dtype=torch.long, device=self.device)
        top5 = torch.zeros((), dtype=torch.long, device=self.device)
        test_set, ranks = self.test_set, data_parallel()
        if ranks:  # each rank evaluates every N-th example; the sums are added up below
            test_set = Subset(test_set, range(dist.get_rank(), len(test_set), dist.get_world_size()))
        loader = DataLoader(test_set, batch_size=self.eval_batch_size, num_workers=self.num_workers)
        count = 0
        for batch in loader:
            images, labels = self.to_device(batch)
            logits = model(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top1 += (ranked[:, 0] == labels).sum()
            top5 += (ranked == labels[:, None]).any(dim=1).sum()
            count += labels.numel()
        model.train(was_training)
        if ranks:
            totals = torch.stack([loss_sum, top1.double(), top5.double(),
                                  torch.tensor(float(count), dtype=torch.float64, device=self.device)])
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
            loss_sum, top1, top5, count = totals[0], totals[1].long(), totals[2].long(), int(totals[3])

        metrics = {"test_loss": float(loss_sum) / count, "test_acc": 100.0 * int(top1) / count}
        if self.top5:
            metrics["test_top5"] = 100.0 * int(top5) / count
        return metrics
