"""What every layer shares: JSON IO, the tasks, the run config and the distributed context.

Both :mod:`eqlens.checkpoint` and :mod:`eqlens.training` import these; none of them imports
either, so the layers stay one-way: data -> core -> checkpoint -> evaluation -> training."""
