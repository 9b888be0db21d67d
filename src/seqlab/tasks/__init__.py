"""The task families, one folder each (sequence: kth and binary_add; ocr). A task imports only seqlab.core and
its own folder; seqlab.core.registry names them."""
