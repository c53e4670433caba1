"""The pure policy adapters of the loop: strategies, decide, rollout plans, fitting, conditions. No I/O."""
