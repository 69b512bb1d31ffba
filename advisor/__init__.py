"""finetune-advisor: recommends a fine-tuning method, estimates its cost, runs and evaluates it."""
