"""Evaluation: metrics, the classification and regression reports, and a checkpoint scored on its data.

    from eqlens.evaluation.checkpoint import evaluate_checkpoint
    report = evaluate_checkpoint("checkpoints/model_i_flagship", "model_i", size=3000)
"""
