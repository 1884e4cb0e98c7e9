"""Reports of evaluations: plots (:mod:`.plots`) and markdown summaries (:mod:`.summary`)."""
