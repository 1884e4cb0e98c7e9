"""Scale-out on existing engines: Ray task fan-out (:mod:`.fanout`) and torchrun helpers (:mod:`.torchrun`)."""
