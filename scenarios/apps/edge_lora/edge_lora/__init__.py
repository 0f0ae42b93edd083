"""edge_lora: federated LoRA fine-tuning of a tiny byte-level LM on Python sources."""
