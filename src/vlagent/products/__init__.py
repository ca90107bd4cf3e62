"""What the catalogue's products answer, over the index and the engines (indexing nothing):
does an image fit a product description (:mod:`~vlagent.products.matching`, its inputs
:mod:`~vlagent.products.match_inputs`), and more like these (:mod:`~vlagent.products.recommend`)."""
